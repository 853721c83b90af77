//! Order-preserving, self-delimiting byte encoding of key attributes (see docs/storage-format.md).
//!
//! A base-table row is stored under `prefix | hash(partition key) | partition key | sort key`, so
//! that a table scans in hashed-partition order (as DynamoDB does, and parallel-scan segments are
//! plain hash ranges) while the items of one partition are contiguous and sorted by sort key in
//! DynamoDB's order: S by UTF-8 bytes, N numerically, B by unsigned bytes. A Query is then one range
//! read.

use crate::{AttributeValue, Number};

/// Terminates an encoded S or B value; 0x00 bytes inside the value are escaped as `00 FF`.
const BYTES_TERMINATOR: [u8; 2] = [0x00, 0x01];
const NUMBER_NEGATIVE: u8 = 0x01;
const NUMBER_ZERO: u8 = 0x02;
const NUMBER_POSITIVE: u8 = 0x03;
/// Bias that makes every allowed scientific exponent (-130..=125) a positive u16.
const EXPONENT_BIAS: i32 = 200;

/// Appends the order-preserving encoding of a key value (S, N or B; other types are not keys).
pub fn encode_key_value(value: &AttributeValue, out: &mut Vec<u8>) {
    match value {
        AttributeValue::S(s) => encode_bytes(s.as_bytes(), out),
        AttributeValue::B(b) => encode_bytes(b, out),
        AttributeValue::N(n) => encode_number(n, out),
        other => panic!("{} is not a key type", other.type_name()),
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&BYTES_TERMINATOR);
}

/// Sign tag, biased exponent, then one byte per digit; negatives invert the exponent and digits so
/// that larger magnitudes sort first.
fn encode_number(n: &Number, out: &mut Vec<u8>) {
    if n.is_zero() {
        out.push(NUMBER_ZERO);
        return;
    }
    let exponent = (n.scientific_exponent() + EXPONENT_BIAS) as u16;
    let digits = n.coefficient().to_string();
    if n.is_negative() {
        out.push(NUMBER_NEGATIVE);
        out.extend_from_slice(&(!exponent).to_be_bytes());
        out.extend(digits.bytes().map(|d| 10 - (d - b'0')));
        out.push(0xFF);
    } else {
        out.push(NUMBER_POSITIVE);
        out.extend_from_slice(&exponent.to_be_bytes());
        out.extend(digits.bytes().map(|d| d - b'0' + 1));
        out.push(0x00);
    }
}

/// The 8-byte big-endian hash that spreads partitions over the key space.
pub fn partition_hash(encoded_partition_key: &[u8]) -> [u8; 8] {
    xxhash_rust::xxh3::xxh3_64(encoded_partition_key).to_be_bytes()
}

/// The storage key of a base-table item: `prefix | hash | partition key | sort key`.
pub fn item_key(
    prefix: &[u8],
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
) -> Vec<u8> {
    // The partition key is encoded in place after room for its hash, which is then filled in:
    // one allocation per key.
    let mut key = Vec::with_capacity(prefix.len() + 8 + 48);
    key.extend_from_slice(prefix);
    let hash_at = key.len();
    key.extend_from_slice(&[0; 8]);
    encode_key_value(partition, &mut key);
    let hash = partition_hash(&key[hash_at + 8..]);
    key[hash_at..hash_at + 8].copy_from_slice(&hash);
    if let Some(sort) = sort {
        encode_key_value(sort, &mut key);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(value: &AttributeValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(value, &mut out);
        out
    }

    fn number_strategy() -> impl Strategy<Value = Number> {
        (any::<bool>(), 0u128..10u128.pow(20), -140i64..120)
            .prop_filter_map("in range", |(neg, c, e)| Number::from_parts(neg, c, e).ok())
    }

    #[test]
    fn an_item_key_is_prefix_hash_partition_then_sort() {
        let partition = AttributeValue::S("user\u{0}42".into());
        let sort = AttributeValue::N(Number::parse("-1.5").unwrap());
        let encoded_partition = encoded(&partition);
        let mut expected = b"pre".to_vec();
        expected.extend_from_slice(&partition_hash(&encoded_partition));
        expected.extend_from_slice(&encoded_partition);
        expected.extend_from_slice(&encoded(&sort));
        assert_eq!(item_key(b"pre", &partition, Some(&sort)), expected);
        let mut alone = b"pre".to_vec();
        alone.extend_from_slice(&partition_hash(&encoded_partition));
        alone.extend_from_slice(&encoded_partition);
        assert_eq!(item_key(b"pre", &partition, None), alone);
    }

    proptest! {
        #[test]
        fn numbers_encode_in_numeric_order(a in number_strategy(), b in number_strategy()) {
            prop_assert_eq!(a.cmp(&b), encoded(&AttributeValue::N(a)).cmp(&encoded(&AttributeValue::N(b))));
        }

        #[test]
        fn strings_encode_in_byte_order(a in ".*", b in ".*") {
            prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()),
                encoded(&AttributeValue::S(a)).cmp(&encoded(&AttributeValue::S(b))));
        }

        #[test]
        fn binaries_encode_in_unsigned_byte_order(a in proptest::collection::vec(any::<u8>(), 0..8),
                                                  b in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert_eq!(a.cmp(&b), encoded(&AttributeValue::B(a)).cmp(&encoded(&AttributeValue::B(b))));
        }

        #[test]
        fn composite_keys_order_by_sort_key_within_a_partition(p in ".*", a in ".*", b in ".*") {
            let pk = AttributeValue::S(p);
            let ka = item_key(b"t", &pk, Some(&AttributeValue::S(a.clone())));
            let kb = item_key(b"t", &pk, Some(&AttributeValue::S(b.clone())));
            prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ka.cmp(&kb));
        }
    }
}
