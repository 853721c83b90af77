//! The answer cache: quick_cache's sharded CLOCK-Pro cache, bounded by bytes (each answer weighs
//! its key, its bytes and its bookkeeping), so memory stays under `cache_mb` whatever is asked.
//! A read takes a shard's read lock and clones an `Arc`; the least used answers make room.
//!
//! Answers stay past their TTL, for serve-stale, until evicted or replaced; freshness is the
//! caller's check ([`Answer::is_fresh`](crate::answer::Answer::is_fresh)).

use quick_cache::Weighter;

use crate::answer::SharedAnswer;
use crate::key::Key;

/// The average answer's weight, to size the cache's tables.
const TYPICAL_WEIGHT: u64 = 512;

pub struct Cache {
    entries: quick_cache::sync::Cache<Box<[u8]>, SharedAnswer, ByWeight>,
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<Box<[u8]>, SharedAnswer> for ByWeight {
    fn weight(&self, key: &Box<[u8]>, answer: &SharedAnswer) -> u64 {
        key.len() as u64 + answer.weight()
    }
}

impl Cache {
    pub fn new(bytes: u64) -> Cache {
        let items = usize::try_from(bytes / TYPICAL_WEIGHT).unwrap_or(usize::MAX);
        Cache {
            entries: quick_cache::sync::Cache::with_weighter(items.max(16), bytes, ByWeight),
        }
    }

    pub fn get(&self, key: &Key) -> Option<SharedAnswer> {
        self.entries.get(key.as_bytes())
    }

    pub fn insert(&self, key: &Key, answer: SharedAnswer) {
        self.entries.insert(key.as_bytes().into(), answer);
    }

    /// Forgets every answer for `name` (lower-case wire format), or all of them.
    pub fn forget(&self, name: Option<&[u8]>) {
        match name {
            None => self.entries.clear(),
            Some(name) => self
                .entries
                .retain(|key, _| Key::from_bytes(key).is_some_and(|key| key.name() != name)),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes the cache holds, as its weights count them.
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }
}
