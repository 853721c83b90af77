//! The data map's keys: the key's bytes, with their first 16 bytes also held inline.
//!
//! Why: a lookup in the ordered map compares the key sought with a dozen or more stored keys on its
//! way down (a binary search in each node), and a `Bytes` key's bytes live in an allocation of their
//! own, so each comparison was a cache miss. With 20,000 items, the key comparisons (`memcmp` and
//! the node search) were 11.5% of the server's CPU on GetItem, and the memory engine answered C
//! slower than the embedded engine, whose B-tree pages hold their keys inline (docs/benchmarks.md,
//! "The in-memory point read"). Compared by their inline heads first, two keys touch their
//! allocations only when the heads tie: an item key's first 16 bytes are its table's prefix and
//! most of its partition key's hash, so among a table's items a tie means the same partition.

use std::cmp::Ordering;

use bytes::Bytes;

/// How many of a key's first bytes are held inline.
const HEAD: usize = 16;

/// A key, ordered as its bytes are (lexicographically).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// The first [`HEAD`] bytes, zero-padded, read as a big-endian number: comparing heads as
    /// numbers compares those bytes in order.
    head: u128,
    bytes: Bytes,
}

impl Key {
    /// A key for borrowed bytes (a lookup's or a range bound's), copied.
    pub fn copied(bytes: &[u8]) -> Key {
        Key::from(Bytes::copy_from_slice(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<Bytes> for Key {
    fn from(bytes: Bytes) -> Key {
        let mut head = [0; HEAD];
        let inline = bytes.len().min(HEAD);
        head[..inline].copy_from_slice(&bytes[..inline]);
        Key {
            head: u128::from_be_bytes(head),
            bytes,
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(bytes: Vec<u8>) -> Key {
        Key::from(Bytes::from(bytes))
    }
}

impl Ord for Key {
    /// Heads that differ order their keys as the bytes do: at the first byte where they differ,
    /// either both keys have that byte, or the shorter key's padding 0 stands below a byte the
    /// longer one has (which is above 0, or the heads would not differ there). Equal heads say
    /// nothing (a key may end where another has zeros), so the whole bytes decide.
    fn cmp(&self, other: &Key) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.bytes.cmp(&other.bytes))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Short keys over few byte values, so that prefixes, zero bytes and ties in the head are common.
    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 7, 255]), 0..24)
    }

    proptest! {
        #[test]
        fn keys_order_as_their_bytes(a in key_bytes(), b in key_bytes()) {
            prop_assert_eq!(Key::copied(&a).cmp(&Key::copied(&b)), a.cmp(&b));
            prop_assert_eq!(Key::copied(&a) == Key::copied(&b), a == b);
        }
    }

    #[test]
    fn a_key_orders_below_the_same_key_with_zeros_after_it() {
        assert!(Key::copied(b"ab") < Key::copied(b"ab\0"));
        assert!(Key::copied(&[7; 16]) < Key::copied(&[[7; 16].as_slice(), &[0]].concat()));
    }
}
