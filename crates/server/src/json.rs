//! Parsing a request body as JSON without letting its depth decide the server's fate.
//!
//! serde_json refuses documents nested deeper than 128 levels (so a body of a million `[` cannot
//! overflow the stack). A *well-formed* document that deep is almost always an attribute value
//! nested far beyond DynamoDB's 32 levels, and DynamoDB names that with its nesting
//! ValidationException, not a SerializationException; a linear scan without recursion tells the
//! two apart. Anything else that is not JSON is a SerializationException without a message, as
//! DynamoDB answers.
//!
//! The tree a body parses into can take tens of times the body's size, so the server charges its
//! memory budget with [`parsed_size`], an upper bound found by one pass over the bytes without
//! allocating, before it parses (see `budget`).

use std::mem::size_of;

use haven_api::DynamoError;
use serde_json::Value;

/// The body as a JSON value, or the error DynamoDB gives for it.
pub(crate) fn parse(body: &[u8]) -> Result<serde_json::Value, DynamoError> {
    haven_api::from_body(body).map_err(|error| {
        if error.to_string().starts_with("recursion limit exceeded") && balanced(body) {
            DynamoError::nesting_exceeded()
        } else {
            DynamoError::Serialization(String::new())
        }
    })
}

/// What each allocation costs the allocator beyond the bytes asked for (a header, and rounding up
/// to 16 bytes), and the smallest block glibc hands out.
const ALLOCATION_OVERHEAD: usize = 32;
/// One object entry as `serde_json::Map` (an `IndexMap`) stores it: the hash, the key, the value.
const ENTRY: usize = size_of::<u64>() + size_of::<String>() + size_of::<Value>();
/// Each value of an array: its slot, three times over: a vector grows by doubling, and the old
/// block lives on while it is copied into the new one.
const ELEMENT_COST: usize = 3 * size_of::<Value>();
/// What an object entry costs beyond an array element's: its entry (three times over, as for an
/// array's values) and its place in the index's hash table (a `usize` and a control byte per
/// bucket, at a load of at most 7/8, doubled on growth, old and new table together meanwhile).
const ENTRY_EXTRA_COST: usize = 3 * ENTRY + 4 * (size_of::<usize>() + 1) - ELEMENT_COST;
/// An array's first allocation: room for four values.
const ARRAY_COST: usize = 4 * size_of::<Value>() + ALLOCATION_OVERHEAD;
/// An object's first allocations: room for three entries, and an index table of four buckets.
const OBJECT_COST: usize = 3 * ENTRY + 4 * (size_of::<usize>() + 1) + 16 + 2 * ALLOCATION_OVERHEAD;

/// An upper bound of the bytes [`parse`] allocates for `body`: every value's slot, every string
/// (its text is never longer than in the body), every object's and array's storage. One pass over
/// the bytes, counting the tokens each value starts with; a body that is not JSON gets an
/// estimate too (the parse fails, having allocated less).
pub(crate) fn parsed_size(body: &[u8]) -> usize {
    let (mut elements, mut entries, mut arrays, mut objects) = (1, 0, 0, 0);
    let (mut strings, mut string_bytes) = (0, 0);
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => {
                strings += 1;
                let end = string_end(body, at).unwrap_or(body.len());
                string_bytes += end - at;
                at = end;
            }
            // A container's first value follows its opening bracket, the others a comma.
            b'[' => {
                arrays += 1;
                elements += 1;
            }
            b'{' => {
                objects += 1;
                elements += 1;
            }
            b',' => elements += 1,
            b':' => entries += 1,
            _ => {}
        }
    }
    elements * ELEMENT_COST
        + entries * ENTRY_EXTRA_COST
        + arrays * ARRAY_COST
        + objects * OBJECT_COST
        + strings * ALLOCATION_OVERHEAD
        + string_bytes
}

/// Whether every `[` and `{` outside strings is closed by its matching bracket, in order.
fn balanced(body: &[u8]) -> bool {
    let mut open = Vec::new();
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => match string_end(body, at) {
                Some(end) => at = end,
                None => return false,
            },
            b'[' | b'{' => open.push(byte),
            b']' if open.pop() != Some(b'[') => return false,
            b'}' if open.pop() != Some(b'{') => return false,
            _ => {}
        }
    }
    open.is_empty()
}

/// Just past the closing quote of the string whose text starts at `from` (escaped characters
/// skipped), or None when it is not closed. Strings are most of a request's bytes: they are
/// skipped with `memchr2`, many bytes at a time, not byte by byte (which cost a BatchWriteItem
/// a fifth of its instructions: docs/benchmarks.md, "Issue 26").
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    while let Some(found) = memchr::memchr2(b'"', b'\\', body.get(from..)?) {
        let at = from + found;
        if body[at] == b'"' {
            return Some(at + 1);
        }
        // A backslash: the character after it is part of the string, whatever it is.
        from = at + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", r#"{"a":["#.repeat(levels), "]}".repeat(levels))
    }

    #[test]
    fn a_well_formed_document_too_deep_for_the_parser_is_a_nesting_error() {
        assert!(parse(nested(10).as_bytes()).is_ok());
        assert_eq!(
            parse(nested(1000).as_bytes()),
            Err(DynamoError::nesting_exceeded())
        );
    }

    #[test]
    fn anything_else_that_is_not_json_is_a_serialization_error() {
        let serialization = Err(DynamoError::Serialization(String::new()));
        assert_eq!(parse(&b"[".repeat(100_000)), serialization);
        assert_eq!(parse(b"{\"a\":\"\xff\"}"), serialization);
        let unclosed = format!("{}1", r#"{"a":["#.repeat(1000));
        assert_eq!(parse(unclosed.as_bytes()), serialization);
        // Brackets inside strings do not count.
        let tricky = format!(r#"{}"]}}\"","#, r#"{"a":["#.repeat(1000));
        assert_eq!(parse(tricky.as_bytes()), serialization);
    }

    /// `parsed_size` against what parsing really allocates: the peak of live bytes on this thread
    /// while a body is parsed and its tree built.
    mod measured {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static COUNTING: Cell<bool> = const { Cell::new(false) };
            static LIVE: Cell<isize> = const { Cell::new(0) };
            static PEAK: Cell<isize> = const { Cell::new(0) };
        }

        fn note(bytes: isize) {
            if COUNTING.with(Cell::get) {
                let live = LIVE.with(|live| {
                    live.set(live.get() + bytes);
                    live.get()
                });
                PEAK.with(|peak| peak.set(peak.get().max(live)));
            }
        }

        struct Counting;

        // SAFETY: every call is passed on to the system allocator unchanged.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                note(layout.size() as isize);
                unsafe { System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                note(-(layout.size() as isize));
                unsafe { System.dealloc(ptr, layout) }
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                // Old and new blocks both live while the bytes are copied.
                note(new_size as isize);
                let moved = unsafe { System.realloc(ptr, layout, new_size) };
                note(-(layout.size() as isize));
                moved
            }
        }

        #[global_allocator]
        static ALLOCATOR: Counting = Counting;

        /// The most bytes live at once on this thread while `body` is parsed.
        pub(super) fn peak_parsing(body: &[u8]) -> usize {
            LIVE.with(|live| live.set(0));
            PEAK.with(|peak| peak.set(0));
            COUNTING.with(|counting| counting.set(true));
            let parsed = super::parse(body);
            COUNTING.with(|counting| counting.set(false));
            assert!(
                parsed.is_ok(),
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
            drop(parsed);
            PEAK.with(Cell::get) as usize
        }
    }

    fn repeated(open: &str, item: impl Fn(usize) -> String, close: &str, count: usize) -> String {
        let items: Vec<String> = (0..count).map(item).collect();
        format!("{open}{}{close}", items.join(","))
    }

    /// Bodies built to make the tree large for their size, and DynamoDB requests.
    fn shapes() -> Vec<(&'static str, String)> {
        let attribute = |i: usize| format!(r#""a{i}":{{"N":"{i}"}}"#);
        let item = |n: usize| repeated("{", attribute, "}", n);
        let put = |i: usize| format!(r#"{{"PutRequest":{{"Item":{}}}}}"#, item(40 + i));
        vec![
            ("empty object", "{}".into()),
            ("one member", r#"{"a":1}"#.into()),
            (
                "one-member objects",
                repeated("[", |_| r#"{"":0}"#.into(), "]", 20_000),
            ),
            ("empty objects", repeated("[", |_| "{}".into(), "]", 20_000)),
            ("empty arrays", repeated("[", |_| "[]".into(), "]", 20_000)),
            (
                "one-element arrays",
                repeated("[", |_| "[0]".into(), "]", 20_000),
            ),
            ("numbers", repeated("[", |i| i.to_string(), "]", 20_000)),
            (
                "wide object",
                repeated("{", |i| format!(r#""k{i}":{i}"#), "}", 20_000),
            ),
            (
                "short strings",
                repeated("[", |_| r#""ab""#.into(), "]", 20_000),
            ),
            (
                "escaped strings",
                repeated("[", |_| r#""\u00e9\n\"""#.into(), "]", 5_000),
            ),
            (
                "long string",
                format!(r#"{{"S":"{}"}}"#, "x".repeat(100_000)),
            ),
            ("deep", format!("{}{}", "[".repeat(120), "]".repeat(120))),
            (
                "deep objects",
                format!("{}1{}", r#"{"a":"#.repeat(120), "}".repeat(120)),
            ),
            (
                "PutItem",
                format!(r#"{{"TableName":"t","Item":{}}}"#, item(100)),
            ),
            (
                "BatchWriteItem",
                format!(
                    r#"{{"RequestItems":{{"t":[{}]}}}}"#,
                    repeated("", put, "", 25)
                ),
            ),
        ]
    }

    #[test]
    fn parsed_size_bounds_what_parsing_allocates() {
        for (shape, body) in shapes() {
            let estimate = parsed_size(body.as_bytes());
            let peak = measured::peak_parsing(body.as_bytes());
            eprintln!(
                "{shape}: body {} peak {peak} estimate {estimate}",
                body.len()
            );
            assert!(
                estimate >= peak,
                "{shape}: estimate {estimate} < peak {peak}"
            );
        }
    }
}
