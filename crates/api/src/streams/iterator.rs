//! Shard iterators: `<stream ARN>|1|<base64 payload>`, as AWS shapes them (the ARN first, so that
//! an iterator tells which stream it reads).
//!
//! The payload holds everything GetRecords needs, so the server keeps no iterator state and an
//! iterator outlives a restart: the table's id (a table deleted and created again under the same
//! name does not answer an old iterator), the shard, the log position after which to read, the
//! time it was issued (iterators expire), and a checksum over all of it and the ARN, so that a
//! damaged or invented iterator is refused instead of misread.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use haven_storage::LogPosition;

const VERSION: &str = "1";
const PAYLOAD_BYTES: usize = 48;

/// What an iterator points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardIterator {
    pub table_id: u64,
    pub shard: u64,
    /// Read the records after this position.
    pub after: LogPosition,
    pub issued_ms: u64,
}

fn checksum(arn: &str, payload: &[u8]) -> u64 {
    let mut input = Vec::with_capacity(arn.len() + payload.len());
    input.extend_from_slice(arn.as_bytes());
    input.extend_from_slice(payload);
    xxhash_rust::xxh3::xxh3_64(&input)
}

impl ShardIterator {
    pub fn encode(&self, arn: &str) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_BYTES);
        payload.extend_from_slice(&self.table_id.to_be_bytes());
        payload.extend_from_slice(&self.shard.to_be_bytes());
        payload.extend_from_slice(&self.after.to_bytes());
        payload.extend_from_slice(&self.issued_ms.to_be_bytes());
        let sum = checksum(arn, &payload);
        payload.extend_from_slice(&sum.to_be_bytes());
        format!("{arn}|{VERSION}|{}", BASE64.encode(payload))
    }

    /// The stream ARN and the iterator; None for anything Haven did not issue.
    pub fn decode(text: &str) -> Option<(&str, ShardIterator)> {
        let mut parts = text.rsplitn(3, '|');
        let (payload, version, arn) = (parts.next()?, parts.next()?, parts.next()?);
        if version != VERSION {
            return None;
        }
        let payload = BASE64.decode(payload).ok()?;
        let payload: &[u8; PAYLOAD_BYTES] = payload.as_slice().try_into().ok()?;
        let word = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        if checksum(arn, &payload[..40]) != word(40) {
            return None;
        }
        Some((
            arn,
            ShardIterator {
                table_id: word(0),
                shard: word(8),
                after: LogPosition::from_bytes(&payload[16..32])?,
                issued_ms: word(32),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_tampering_is_detected() {
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-12-07T00:13:16.484";
        let iterator = ShardIterator {
            table_id: 3,
            shard: 2,
            after: LogPosition {
                timestamp_ms: 99,
                sequence: 4,
            },
            issued_ms: 1234,
        };
        let text = iterator.encode(arn);
        assert!(text.starts_with(arn) && text.len() < 2048);
        assert_eq!(ShardIterator::decode(&text), Some((arn, iterator)));
        let other_arn = text.replacen("table/t/", "table/u/", 1);
        assert_eq!(ShardIterator::decode(&other_arn), None);
        for garbage in ["", "x", "a|1|", "a|2|AAAA", &format!("{text}A")] {
            assert_eq!(ShardIterator::decode(garbage), None, "{garbage:?}");
        }
    }
}
