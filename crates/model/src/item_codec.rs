//! Compact binary encoding of items as stored values (see docs/storage-format.md).
//!
//! `item := varint(count) (string(name) value)*`; `value := tag payload`; strings and binaries are
//! `varint(len) bytes`; numbers are `varint(zigzag(exponent)) varint(coefficient)` under a tag that
//! carries the sign. Decoding checks every length, so a damaged value is an error, never a panic.

use std::collections::BTreeMap;

use crate::{AttributeValue, Item, Number};

const TAG_S: u8 = 1;
const TAG_N_POSITIVE: u8 = 2;
const TAG_N_NEGATIVE: u8 = 3;
const TAG_B: u8 = 4;
const TAG_TRUE: u8 = 5;
const TAG_FALSE: u8 = 6;
const TAG_NULL: u8 = 7;
const TAG_M: u8 = 8;
const TAG_L: u8 = 9;
const TAG_SS: u8 = 10;
const TAG_NS: u8 = 11;
const TAG_BS: u8 = 12;

/// A stored value that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError;

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stored item is corrupt")
    }
}

impl std::error::Error for DecodeError {}

/// The item's encoding, in a buffer of its exact length: measuring first is cheaper than growing
/// the buffer through doublings (each a copy) to a 1 KB item's size.
pub fn encode_item(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(map_len(item));
    encode_map(item, &mut out);
    out
}

fn encode_map(map: &BTreeMap<String, AttributeValue>, out: &mut Vec<u8>) {
    write_varint(map.len() as u128, out);
    for (name, value) in map {
        write_bytes(name.as_bytes(), out);
        encode_value(value, out);
    }
}

/// The length of [`encode_map`]'s output.
fn map_len(map: &BTreeMap<String, AttributeValue>) -> usize {
    let entries: usize = map
        .iter()
        .map(|(name, value)| bytes_len(name.len()) + value_len(value))
        .sum();
    varint_len(map.len() as u128) + entries
}

/// The length of [`encode_value`]'s output.
fn value_len(value: &AttributeValue) -> usize {
    let members = |count: usize, sum: usize| 1 + varint_len(count as u128) + sum;
    match value {
        AttributeValue::S(s) => 1 + bytes_len(s.len()),
        AttributeValue::N(n) => number_len(n),
        AttributeValue::B(b) => 1 + bytes_len(b.len()),
        AttributeValue::Bool(_) | AttributeValue::Null => 1,
        AttributeValue::M(m) => 1 + map_len(m),
        AttributeValue::L(l) => members(l.len(), l.iter().map(value_len).sum()),
        AttributeValue::Ss(s) => members(s.len(), s.iter().map(|v| bytes_len(v.len())).sum()),
        AttributeValue::Ns(s) => members(s.len(), s.iter().map(number_len).sum()),
        AttributeValue::Bs(s) => members(s.len(), s.iter().map(|v| bytes_len(v.len())).sum()),
    }
}

fn number_len(n: &Number) -> usize {
    1 + varint_len(zigzag(n.exponent()) as u128) + varint_len(n.coefficient())
}

fn bytes_len(len: usize) -> usize {
    varint_len(len as u128) + len
}

/// Bytes of `write_varint(value)`: seven bits each, at least one.
fn varint_len(value: u128) -> usize {
    ((128 - value.leading_zeros() as usize).max(1)).div_ceil(7)
}

fn zigzag(exponent: i32) -> u64 {
    let exponent = exponent as i64;
    ((exponent << 1) ^ (exponent >> 63)) as u64
}

pub fn decode_item(bytes: &[u8]) -> Result<Item, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let item = reader.map()?;
    if reader.pos != bytes.len() {
        return Err(DecodeError);
    }
    Ok(item)
}

fn encode_value(value: &AttributeValue, out: &mut Vec<u8>) {
    match value {
        AttributeValue::S(s) => {
            out.push(TAG_S);
            write_bytes(s.as_bytes(), out);
        }
        AttributeValue::N(n) => encode_number(n, out),
        AttributeValue::B(b) => {
            out.push(TAG_B);
            write_bytes(b, out);
        }
        AttributeValue::Bool(b) => out.push(if *b { TAG_TRUE } else { TAG_FALSE }),
        AttributeValue::Null => out.push(TAG_NULL),
        AttributeValue::M(m) => {
            out.push(TAG_M);
            encode_map(m, out);
        }
        AttributeValue::L(l) => {
            out.push(TAG_L);
            write_varint(l.len() as u128, out);
            l.iter().for_each(|v| encode_value(v, out));
        }
        AttributeValue::Ss(s) => {
            out.push(TAG_SS);
            write_varint(s.len() as u128, out);
            s.iter().for_each(|v| write_bytes(v.as_bytes(), out));
        }
        AttributeValue::Ns(s) => {
            out.push(TAG_NS);
            write_varint(s.len() as u128, out);
            s.iter().for_each(|n| encode_number(n, out));
        }
        AttributeValue::Bs(s) => {
            out.push(TAG_BS);
            write_varint(s.len() as u128, out);
            s.iter().for_each(|v| write_bytes(v, out));
        }
    }
}

fn encode_number(n: &Number, out: &mut Vec<u8>) {
    out.push(if n.is_negative() {
        TAG_N_NEGATIVE
    } else {
        TAG_N_POSITIVE
    });
    write_varint(zigzag(n.exponent()) as u128, out);
    write_varint(n.coefficient(), out);
}

fn write_varint(mut value: u128, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_varint(bytes.len() as u128, out);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u128, DecodeError> {
        let mut value = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            value |= ((b & 0x7F) as u128) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError)
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError)?;
        if len > self.bytes.len() - self.pos {
            Err(DecodeError)
        } else {
            Ok(len)
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len()?;
        let slice = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError)
    }

    fn number(&mut self, negative: bool) -> Result<Number, DecodeError> {
        let zigzag = u64::try_from(self.varint()?).map_err(|_| DecodeError)?;
        let exponent = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let coefficient = self.varint()?;
        Number::from_parts(negative, coefficient, exponent).map_err(|_| DecodeError)
    }

    /// A map's entries come in key order (they were encoded from a `BTreeMap`), so the map is
    /// built from them in one pass (a bulk build, which checks the order) rather than by inserting
    /// each, a search of the node per entry: inserting was a tenth of a Query's instructions.
    /// Entries out of order or repeated decode as inserting them would (the last value wins).
    fn map(&mut self) -> Result<BTreeMap<String, AttributeValue>, DecodeError> {
        let count = self.len()?;
        let mut entries = Vec::with_capacity(count.min(256));
        for _ in 0..count {
            let name = self.string()?;
            entries.push((name, self.value()?));
        }
        Ok(BTreeMap::from_iter(entries))
    }

    fn list<T>(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.len()?;
        (0..count).map(|_| element(self)).collect()
    }

    fn value(&mut self) -> Result<AttributeValue, DecodeError> {
        Ok(match self.byte()? {
            TAG_S => AttributeValue::S(self.string()?),
            TAG_N_POSITIVE => AttributeValue::N(self.number(false)?),
            TAG_N_NEGATIVE => AttributeValue::N(self.number(true)?),
            TAG_B => AttributeValue::B(self.bytes()?.to_vec()),
            TAG_TRUE => AttributeValue::Bool(true),
            TAG_FALSE => AttributeValue::Bool(false),
            TAG_NULL => AttributeValue::Null,
            TAG_M => AttributeValue::M(self.map()?),
            TAG_L => AttributeValue::L(self.list(Self::value)?),
            TAG_SS => AttributeValue::Ss(self.list(Self::string)?),
            TAG_NS => AttributeValue::Ns(self.list(|r| {
                let negative = match r.byte()? {
                    TAG_N_POSITIVE => false,
                    TAG_N_NEGATIVE => true,
                    _ => return Err(DecodeError),
                };
                r.number(negative)
            })?),
            TAG_BS => AttributeValue::Bs(self.list(|r| Ok(r.bytes()?.to_vec()))?),
            _ => return Err(DecodeError),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value_strategy() -> impl Strategy<Value = AttributeValue> {
        let number = (any::<bool>(), 0u128..10u128.pow(30), -100i64..90)
            .prop_filter_map("in range", |(neg, c, e)| Number::from_parts(neg, c, e).ok());
        let leaf = prop_oneof![
            ".*".prop_map(AttributeValue::S),
            number.clone().prop_map(AttributeValue::N),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(AttributeValue::B),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null),
            proptest::collection::vec(".*", 1..4).prop_map(AttributeValue::Ss),
            proptest::collection::vec(number, 1..4).prop_map(AttributeValue::Ns),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                proptest::collection::btree_map(".*", inner, 0..4).prop_map(AttributeValue::M),
            ]
        })
    }

    proptest! {
        #[test]
        fn items_round_trip(item in proptest::collection::btree_map(".*", value_strategy(), 0..6)) {
            prop_assert_eq!(decode_item(&encode_item(&item)).unwrap(), item);
        }

        #[test]
        fn long_values_are_measured_exactly(len in prop_oneof![0usize..300, 16_000usize..17_000]) {
            let item: Item = [
                ("s".to_string(), AttributeValue::S("x".repeat(len))),
                ("b".to_string(), AttributeValue::B(vec![7; len])),
            ]
            .into_iter()
            .collect();
            prop_assert_eq!(encode_item(&item).len(), map_len(&item));
        }

        #[test]
        fn the_buffer_is_measured_exactly(item in proptest::collection::btree_map(".*", value_strategy(), 0..6)) {
            prop_assert_eq!(encode_item(&item).len(), map_len(&item));
        }

        #[test]
        fn entries_in_any_order_decode_as_inserted(
            entries in proptest::collection::vec(("[ab]{0,2}", value_strategy()), 0..8),
        ) {
            let mut bytes = Vec::new();
            write_varint(entries.len() as u128, &mut bytes);
            let mut inserted = Item::new();
            for (name, value) in entries {
                write_bytes(name.as_bytes(), &mut bytes);
                encode_value(&value, &mut bytes);
                inserted.insert(name, value);
            }
            prop_assert_eq!(decode_item(&bytes).unwrap(), inserted);
        }

        #[test]
        fn damaged_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_item(&bytes);
        }
    }
}
