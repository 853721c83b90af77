//! What one group commit does, decided in memory: which batches hold, and the net writes of those
//! that do.
//!
//! The committer locks the database's commit lock, reads every key the group's batches expect or
//! add to (and the log's state), then calls [`decide`]. Each batch is checked, in arrival order,
//! against the state the batches before it left (an overlay of their writes over the values
//! read), exactly as the embedded engine checks them inside its one write transaction; a batch that
//! holds is applied to the overlay. What remains is the group's net effect (range deletes, then
//! the final value of every key written, then the log), which the committer sends as a handful of
//! set-based statements instead of one statement per op. Keeping this pure makes the rules
//! testable without a server.

use std::collections::{BTreeMap, HashMap};

use haven_storage::log::{self, LogPosition};
use haven_storage::log::{HEAD_KEY, horizon_key};
use haven_storage::{WriteBatch, WriteOp, decode_counter};

/// The keys a group must read before deciding: data keys that are expected or added to, and
/// log-state keys (the head when a batch appends, the horizon of each table trimmed).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Reads {
    pub data: Vec<Vec<u8>>,
    pub state: Vec<Vec<u8>>,
}

impl Reads {
    pub(crate) fn of(group: &[&WriteBatch]) -> Reads {
        let mut data = Vec::new();
        let mut state = Vec::new();
        for batch in group {
            data.extend(batch.expectations.iter().map(|(key, _)| key.clone()));
            for op in &batch.ops {
                match op {
                    WriteOp::AddCounter(key, _) => data.push(key.clone()),
                    WriteOp::AppendLog(_) => state.push(HEAD_KEY.to_vec()),
                    WriteOp::TrimLog { table, .. } => state.push(horizon_key(*table).to_vec()),
                    _ => {}
                }
            }
        }
        for keys in [&mut data, &mut state] {
            keys.sort_unstable();
            keys.dedup();
        }
        Reads { data, state }
    }
}

/// A group's outcome: which batches apply, and their net writes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision {
    /// Per batch, in arrival order: whether its expectations held (and it is applied).
    pub applied: Vec<bool>,
    /// `[start, end)` ranges of data keys to delete, before the point writes.
    pub range_deletes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Final values of data keys written by the group.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Data keys the group leaves absent.
    pub deletes: Vec<Vec<u8>>,
    /// `[start, end)` ranges of log entry keys to drop (trims), before the appends.
    pub log_trims: Vec<(Vec<u8>, Vec<u8>)>,
    /// New log entries: entry key and encoded record.
    pub log_appends: Vec<(Vec<u8>, Vec<u8>)>,
    /// Log-state keys to store (the head, trim horizons).
    pub state: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Decision {
    /// Whether the group writes anything at all (if not, the transaction is simply rolled back).
    pub(crate) fn writes(&self) -> bool {
        !(self.range_deletes.is_empty()
            && self.puts.is_empty()
            && self.deletes.is_empty()
            && self.log_trims.is_empty()
            && self.log_appends.is_empty()
            && self.state.is_empty())
    }
}

/// The data as the group's applied batches leave it: their point writes and range deletes over
/// the values read at the start.
struct Overlay<'r> {
    read: &'r HashMap<Vec<u8>, Vec<u8>>,
    points: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        if let Some(value) = self.points.get(key) {
            return value.as_deref();
        }
        if self
            .ranges
            .iter()
            .any(|(start, end)| start.as_slice() <= key && key < end.as_slice())
        {
            return None;
        }
        self.read.get(key).map(Vec::as_slice)
    }

    fn set(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        self.points.insert(key.to_vec(), value);
    }

    fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        let inside: Vec<Vec<u8>> = self
            .points
            .range(start.to_vec()..end.to_vec())
            .map(|(key, _)| key.clone())
            .collect();
        for key in inside {
            self.points.remove(&key);
        }
        self.ranges.push((start.to_vec(), end.to_vec()));
    }

    fn add_counter(&mut self, key: &[u8], delta: i64) {
        let current = self.get(key).map_or(0, decode_counter);
        let updated = current.wrapping_add(delta);
        self.set(key, (updated != 0).then(|| updated.to_be_bytes().to_vec()));
    }
}

/// The log as the group moves it: the head, the records stamped so far and the horizons.
struct LogState<'r> {
    read: &'r HashMap<Vec<u8>, Vec<u8>>,
    head: LogPosition,
    head_moved: bool,
    now_ms: u64,
    appends: Vec<(u64, LogPosition, Vec<u8>)>,
    trims: Vec<(Vec<u8>, Vec<u8>)>,
    horizons: BTreeMap<u64, LogPosition>,
}

impl LogState<'_> {
    fn position(&self, key: &[u8]) -> LogPosition {
        self.read
            .get(key)
            .and_then(|bytes| LogPosition::from_bytes(bytes))
            .unwrap_or(LogPosition::START)
    }

    fn append(&mut self, record: &haven_storage::LogRecord) {
        let position = self.head.next(self.now_ms);
        self.appends
            .push((record.table, position, log::encode_record(record)));
        self.head = position;
        self.head_moved = true;
    }

    /// Drops the table's older records: those stored (by a range delete sent before the group's
    /// appends) and those this group appended before the trim.
    fn trim(&mut self, table: u64, before: LogPosition) {
        let (start, end) = (
            log::entry_key(table, LogPosition::START),
            log::entry_key(table, before),
        );
        self.appends
            .retain(|(t, position, _)| *t != table || *position >= before);
        self.trims.push((start.to_vec(), end.to_vec()));
        let stored = self.position(&horizon_key(table));
        let horizon = self.horizons.entry(table).or_insert(stored);
        *horizon = (*horizon).max(before);
    }
}

/// A group decided without reading first: the values it assumed, to be checked under the commit
/// lock by the statement that writes it ([`decide_assuming`]).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Assumed {
    /// The decision, counters left out.
    pub decision: Decision,
    /// Data keys and the value (`None`: absent) the decision took them to hold.
    pub data: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Log-state keys and the value the decision took them to hold.
    pub state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Counter keys and what the applied batches add to them, added by the database itself.
    pub counters: Vec<(Vec<u8>, i64)>,
}

/// Decides the group as [`decide`] would if every expected key held the value its first batch
/// expects, and every log-state key the value in `known_state` (what this committer last read or
/// wrote). If the database confirms those assumptions under the commit lock, the decision is the
/// one reading first would have made: the keys `decide` reads are exactly the expected ones, the
/// log state and the counters, and counters are sent as deltas. `None` when the group cannot be
/// decided so: a log-state key not known, or a counter key the group also expects, writes or
/// deletes a range over (its stored value would matter).
pub(crate) fn decide_assuming(
    group: &[&WriteBatch],
    known_state: &HashMap<Vec<u8>, Option<Vec<u8>>>,
    now_ms: u64,
) -> Option<Assumed> {
    let mut data: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for (key, expected) in group.iter().flat_map(|batch| &batch.expectations) {
        data.entry(key.clone()).or_insert_with(|| expected.clone());
    }
    let counters = counter_keys(group, &data)?;
    let state = Reads::of(group)
        .state
        .into_iter()
        .map(|key| known_state.get(&key).map(|value| (key, value.clone())))
        .collect::<Option<Vec<_>>>()?;
    let data: Vec<_> = data.into_iter().collect();
    let present = |pairs: &[(Vec<u8>, Option<Vec<u8>>)]| {
        pairs
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), value.clone()?)))
            .collect::<HashMap<_, _>>()
    };
    let read_data = present(&data);
    let read_state = present(&state);
    let mut decision = decide(group, &read_data, &read_state, now_ms);
    let mut deltas = Vec::new();
    decision.puts.retain(|(key, value)| {
        let counter = counters.contains(key);
        if counter {
            deltas.push((key.clone(), decode_counter(value)));
        }
        !counter
    });
    decision.deletes.retain(|key| !counters.contains(key));
    Some(Assumed {
        decision,
        data,
        state,
        counters: deltas,
    })
}

/// The group's counter keys, or `None` if one of them is also expected, put, deleted or inside a
/// deleted range: then its stored value decides something, and must be read.
fn counter_keys(
    group: &[&WriteBatch],
    expected: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Option<std::collections::BTreeSet<Vec<u8>>> {
    let mut counters = std::collections::BTreeSet::new();
    let mut written = std::collections::BTreeSet::new();
    let mut ranges = Vec::new();
    for op in group.iter().flat_map(|batch| &batch.ops) {
        match op {
            WriteOp::AddCounter(key, _) => counters.insert(key),
            WriteOp::Put(key, _) | WriteOp::Delete(key) => written.insert(key),
            WriteOp::DeleteRange(start, end) => {
                ranges.push((start, end));
                false
            }
            WriteOp::AppendLog(_) | WriteOp::TrimLog { .. } => false,
        };
    }
    let clash = |key: &&Vec<u8>| {
        expected.contains_key(*key)
            || written.contains(*key)
            || ranges
                .iter()
                .any(|(start, end)| *start <= *key && *key < *end)
    };
    if counters.iter().any(clash) {
        return None;
    }
    Some(counters.into_iter().cloned().collect())
}

/// Decides the group: `read_data` holds the stored values of [`Reads::data`] (absent keys are
/// missing), `read_state` those of [`Reads::state`]; `now_ms` stamps the group's log records.
pub(crate) fn decide(
    group: &[&WriteBatch],
    read_data: &HashMap<Vec<u8>, Vec<u8>>,
    read_state: &HashMap<Vec<u8>, Vec<u8>>,
    now_ms: u64,
) -> Decision {
    let mut data = Overlay {
        read: read_data,
        points: BTreeMap::new(),
        ranges: Vec::new(),
    };
    let mut log = LogState {
        read: read_state,
        head: LogPosition::START,
        head_moved: false,
        now_ms,
        appends: Vec::new(),
        trims: Vec::new(),
        horizons: BTreeMap::new(),
    };
    log.head = log.position(HEAD_KEY);
    let mut applied = Vec::with_capacity(group.len());
    for batch in group {
        let holds = batch
            .expectations
            .iter()
            .all(|(key, expected)| data.get(key) == expected.as_deref());
        if holds {
            apply(batch, &mut data, &mut log);
        }
        applied.push(holds);
    }
    finish(applied, data, log)
}

fn apply(batch: &WriteBatch, data: &mut Overlay, log: &mut LogState) {
    for op in &batch.ops {
        match op {
            WriteOp::Put(key, value) => data.set(key, Some(value.clone())),
            WriteOp::Delete(key) => data.set(key, None),
            WriteOp::AddCounter(key, delta) => data.add_counter(key, *delta),
            WriteOp::DeleteRange(start, end) => data.delete_range(start, end),
            WriteOp::AppendLog(record) => log.append(record),
            WriteOp::TrimLog { table, before } => log.trim(*table, *before),
        }
    }
}

fn finish(applied: Vec<bool>, data: Overlay, log: LogState) -> Decision {
    let mut decision = Decision {
        applied,
        range_deletes: data.ranges,
        log_trims: log.trims,
        ..Decision::default()
    };
    for (key, value) in data.points {
        match value {
            Some(value) => decision.puts.push((key, value)),
            None => decision.deletes.push(key),
        }
    }
    decision.log_appends = log
        .appends
        .into_iter()
        .map(|(table, position, record)| (log::entry_key(table, position).to_vec(), record))
        .collect();
    if log.head_moved {
        decision
            .state
            .push((HEAD_KEY.to_vec(), log.head.to_bytes().to_vec()));
    }
    for (table, horizon) in log.horizons {
        decision
            .state
            .push((horizon_key(table).to_vec(), horizon.to_bytes().to_vec()));
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_storage::{LogRecord, Origin};

    fn read(pairs: &[(&[u8], &[u8])]) -> HashMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn reads_cover_expectations_counters_and_the_log_state_once_each() {
        let mut a = WriteBatch::new();
        a.expect(b"k".to_vec(), None)
            .add_counter(b"c".to_vec(), 1)
            .put(b"p".to_vec(), vec![]);
        let mut b = WriteBatch::new();
        b.expect(b"k".to_vec(), Some(vec![1]))
            .trim_log(3, LogPosition::START)
            .append_log(LogRecord {
                table: 3,
                key: vec![],
                old: None,
                new: None,
                origin: Origin::User,
                partial: Default::default(),
            });
        assert_eq!(
            Reads::of(&[&a, &b]),
            Reads {
                data: vec![b"c".to_vec(), b"k".to_vec()],
                state: vec![HEAD_KEY.to_vec(), horizon_key(3).to_vec()],
            }
        );
    }

    #[test]
    fn each_batch_is_checked_against_what_the_ones_before_it_left() {
        let stored = read(&[(b"k", b"v1"), (b"r5", b"x")]);
        let mut first = WriteBatch::new();
        first
            .expect(b"k".to_vec(), Some(b"v1".to_vec()))
            .put(b"k".to_vec(), b"v2".to_vec())
            .delete_range(b"r".to_vec(), b"s".to_vec());
        let mut stale = WriteBatch::new();
        stale
            .expect(b"k".to_vec(), Some(b"v1".to_vec()))
            .put(b"other".to_vec(), vec![]);
        let mut fresh = WriteBatch::new();
        fresh
            .expect(b"k".to_vec(), Some(b"v2".to_vec()))
            .expect(b"r5".to_vec(), None)
            .put(b"r7".to_vec(), b"new".to_vec());
        let decision = decide(&[&first, &stale, &fresh], &stored, &HashMap::new(), 5);
        assert_eq!(decision.applied, [true, false, true]);
        assert_eq!(decision.range_deletes, [(b"r".to_vec(), b"s".to_vec())]);
        assert_eq!(
            decision.puts,
            [
                (b"k".to_vec(), b"v2".to_vec()),
                (b"r7".to_vec(), b"new".to_vec())
            ]
        );
        assert!(decision.deletes.is_empty());
        assert!(decision.state.is_empty(), "no log op, no log state");
    }

    #[test]
    fn counters_start_from_the_stored_value_and_vanish_at_zero() {
        let stored = read(&[(b"c", &3i64.to_be_bytes())]);
        let mut batch = WriteBatch::new();
        batch
            .add_counter(b"c".to_vec(), -3)
            .add_counter(b"d".to_vec(), 4);
        let decision = decide(&[&batch], &stored, &HashMap::new(), 0);
        assert_eq!(decision.deletes, [b"c".to_vec()]);
        assert_eq!(
            decision.puts,
            [(b"d".to_vec(), 4i64.to_be_bytes().to_vec())]
        );
    }

    #[test]
    fn log_records_are_stamped_after_the_head_and_a_trim_drops_earlier_ones() {
        let head = LogPosition {
            timestamp_ms: 100,
            sequence: 7,
        };
        let state = read(&[(HEAD_KEY, &head.to_bytes())]);
        let record = |table| LogRecord {
            table,
            key: b"k".to_vec(),
            old: None,
            new: Some(vec![1]),
            origin: Origin::User,
            partial: Default::default(),
        };
        let mut batch = WriteBatch::new();
        batch
            .append_log(record(1))
            .append_log(record(2))
            .trim_log(1, LogPosition::from_bytes(&[0xFF; 16]).unwrap())
            .append_log(record(1));
        // The clock went back: records keep the head's time.
        let decision = decide(&[&batch], &HashMap::new(), &state, 50);
        let positions: Vec<_> = decision
            .log_appends
            .iter()
            .map(|(key, _)| log::parse_entry_key(key).unwrap())
            .collect();
        let at = |sequence| LogPosition {
            timestamp_ms: 100,
            sequence,
        };
        assert_eq!(positions, [(2, at(9)), (1, at(10))]);
        assert_eq!(decision.log_trims.len(), 1);
        assert_eq!(
            decision.state,
            [
                (HEAD_KEY.to_vec(), at(10).to_bytes().to_vec()),
                (horizon_key(1).to_vec(), [0xFF; 16].to_vec()),
            ]
        );
    }

    #[test]
    fn an_assumed_group_takes_first_expectations_as_stored_and_sends_counters_as_deltas() {
        let update = |old: &[u8], new: &[u8]| {
            let mut batch = WriteBatch::new();
            batch
                .expect(b"k".to_vec(), Some(old.to_vec()))
                .put(b"k".to_vec(), new.to_vec())
                .add_counter(b"size".to_vec(), 2)
                .add_counter(b"count".to_vec(), 0);
            batch
        };
        let (first, stale, next) = (
            update(b"v1", b"v2"),
            update(b"v1", b"v3"),
            update(b"v2", b"v4"),
        );
        let assumed = decide_assuming(&[&first, &stale, &next], &HashMap::new(), 0).unwrap();
        assert_eq!(assumed.data, [(b"k".to_vec(), Some(b"v1".to_vec()))]);
        assert!(assumed.state.is_empty());
        assert_eq!(assumed.decision.applied, [true, false, true]);
        assert_eq!(assumed.decision.puts, [(b"k".to_vec(), b"v4".to_vec())]);
        assert!(
            assumed.decision.deletes.is_empty(),
            "a zero sum writes nothing"
        );
        assert_eq!(assumed.counters, [(b"size".to_vec(), 4)]);
    }

    #[test]
    fn a_group_whose_counters_or_log_state_matter_is_not_assumed() {
        let mut clash = WriteBatch::new();
        clash
            .add_counter(b"c".to_vec(), 1)
            .delete_range(b"a".to_vec(), b"z".to_vec());
        assert_eq!(decide_assuming(&[&clash], &HashMap::new(), 0), None);
        let mut append = WriteBatch::new();
        append.append_log(LogRecord {
            table: 1,
            key: b"k".to_vec(),
            old: None,
            new: None,
            origin: Origin::User,
            partial: Default::default(),
        });
        assert_eq!(decide_assuming(&[&append], &HashMap::new(), 0), None);
        let known = HashMap::from([(HEAD_KEY.to_vec(), None)]);
        let assumed = decide_assuming(&[&append], &known, 7).unwrap();
        assert_eq!(assumed.state, [(HEAD_KEY.to_vec(), None)]);
        let head = LogPosition {
            timestamp_ms: 7,
            sequence: 1,
        };
        assert_eq!(
            assumed.decision.state,
            [(HEAD_KEY.to_vec(), head.to_bytes().to_vec())]
        );
    }

    #[test]
    fn a_refused_group_writes_nothing() {
        let mut batch = WriteBatch::new();
        batch
            .expect(b"k".to_vec(), Some(vec![1]))
            .put(b"k".to_vec(), vec![2]);
        let decision = decide(&[&batch], &HashMap::new(), &HashMap::new(), 0);
        assert_eq!(decision.applied, [false]);
        assert!(!decision.writes());
    }
}
