//! DynamoDB's reserved words: attribute names that must be written through `#name` placeholders.

use std::sync::LazyLock;

/// The list AWS publishes (developer guide, "Reserved words in DynamoDB"), one upper-case word a line.
const WORDS: &str = include_str!("reserved_words.txt");

/// Whether `word` is reserved. `SIZE` is on the published list, yet DynamoDB accepts it as an
/// attribute name (it is the `size` function's name), so it is exempt here.
pub(crate) fn is_reserved(word: &str) -> bool {
    static SORTED: LazyLock<Vec<&str>> = LazyLock::new(|| WORDS.lines().collect());
    let upper = word.to_ascii_uppercase();
    upper != "SIZE" && SORTED.binary_search(&upper.as_str()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_complete_and_case_insensitive() {
        assert_eq!(WORDS.lines().count(), 573);
        assert!(is_reserved("name"));
        assert!(is_reserved("Zone"));
        assert!(!is_reserved("size"));
        assert!(!is_reserved("id"));
    }
}
