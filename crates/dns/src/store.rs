//! The plan store: immutable plan files and the pointer to the plan in effect.
//!
//! Layout of a state directory:
//! - `plans/<generation>.json`: one file per plan, written once (I4), sealed with a CRC32;
//! - `effective`: the pointer, `{generation, fence}`, sealed the same way, replaced atomically
//!   (write a temporary file, fsync, rename, fsync the directory);
//! - `lock`: held for the store's lifetime so that one process owns the directory.
//!
//! Every rule that keeps the endpoint from vanishing is decided here, at the point of write, by the
//! pure functions [`decide_apply`], [`may_delete`] and [`cleanup_victims`] (the model check in
//! `tests/model_check.rs` runs the same functions):
//! - applying is compare-and-set on the generation and the fencing token, in the same step as the
//!   pointer flip, under the store's lock (I1, I5), and only to a plan that is stored intact (I2);
//! - deleting refuses the plan in effect and anything newer, whoever asks (I3);
//! - reading reconciles (I6): a missing, truncated or corrupt pointer or plan fails its checksum and
//!   the store serves the newest intact plan instead, or none, so the planner starts afresh; opening
//!   rewrites a lost pointer. Old plans stay on disk, so a restarted node serves its last good plan
//!   at once (I7).
//!
//! [`PlanStore::in_memory`] keeps the same files in memory, with the same semantics, for tests and
//! `--in-memory` servers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::plan::{Generation, Plan};

/// Identifies an enactor's incarnation; a newer one fences every older one out (I5).
pub type FencingToken = u64;

/// What the `effective` file says: the plan in effect, and the newest token that published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pointer {
    pub generation: Generation,
    pub fence: FencingToken,
}

/// Why an apply was refused. The published plan is unchanged in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum StaleReason {
    #[error("fencing token {presented} is older than {current}")]
    FencedOut {
        presented: FencingToken,
        current: FencingToken,
    },
    #[error("generation {candidate} is not newer than the plan in effect, {effective}")]
    NotNewer {
        candidate: Generation,
        effective: Generation,
    },
    #[error("plan {candidate} is not stored intact")]
    NotStored { candidate: Generation },
}

/// The compare-and-set of I1, I2 and I5: the pointer that applying `candidate` with `token` yields,
/// or why it must not be applied. `candidate_stored` says whether the plan's file is intact.
pub fn decide_apply(
    effective: Pointer,
    candidate: Generation,
    candidate_stored: bool,
    token: FencingToken,
) -> Result<Pointer, StaleReason> {
    if token < effective.fence {
        return Err(StaleReason::FencedOut {
            presented: token,
            current: effective.fence,
        });
    }
    if candidate <= effective.generation {
        return Err(StaleReason::NotNewer {
            candidate,
            effective: effective.generation,
        });
    }
    if !candidate_stored {
        return Err(StaleReason::NotStored { candidate });
    }
    Ok(Pointer {
        generation: candidate,
        fence: token,
    })
}

/// I3: a plan may be deleted only when a plan is in effect and this one is older.
pub fn may_delete(generation: Generation, effective: Option<Generation>) -> bool {
    effective.is_some_and(|effective| generation < effective)
}

/// The plans clean-up should delete: those older than `effective`, except the `keep` newest of
/// them (the history).
pub fn cleanup_victims(
    stored: &BTreeSet<Generation>,
    effective: Option<Generation>,
    keep: usize,
) -> Vec<Generation> {
    let older: Vec<Generation> = stored
        .iter()
        .copied()
        .filter(|&generation| may_delete(generation, effective))
        .collect();
    let victims = older.len().saturating_sub(keep);
    older[..victims].to_vec()
}

/// What an apply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ApplyOutcome {
    Applied(Pointer),
    Stale(StaleReason),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("plan store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("state directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("plan {0} is already stored with different contents")]
    ConflictingPlan(Generation),
}

/// The plan store. All operations take one lock, so each is atomic with respect to the others.
pub struct PlanStore {
    inner: Mutex<Inner>,
}

struct Inner {
    files: Box<dyn Files>,
    /// The newest fencing token this store has issued.
    tokens_issued: FencingToken,
    /// The newest fencing token that published a plan.
    highest_accepted: FencingToken,
}

/// What reconciling the files found.
struct Reconciled {
    /// The pointer, if intact.
    pointer: Option<Pointer>,
    /// The plan to serve: the pointer's if intact, else the newest intact plan.
    serving: Option<Plan>,
}

impl PlanStore {
    /// Opens (creating if needed) the store in `dir` and repairs a missing or corrupt pointer.
    pub fn open(dir: &Path) -> Result<PlanStore, StoreError> {
        let files = DiskFiles::open(dir)?;
        PlanStore::with_files(Box::new(files))
    }

    /// A store whose files live in memory.
    pub fn in_memory() -> PlanStore {
        PlanStore::with_files(Box::new(MemoryFiles::default())).expect("memory files do not fail")
    }

    fn with_files(files: Box<dyn Files>) -> Result<PlanStore, StoreError> {
        let mut inner = Inner {
            files,
            tokens_issued: 0,
            highest_accepted: 0,
        };
        inner.repair_pointer()?;
        Ok(PlanStore {
            inner: Mutex::new(inner),
        })
    }

    /// A token newer than any this store has issued or accepted. Issuing fences nobody out: the
    /// token does when it first publishes.
    pub fn issue_token(&self) -> Result<FencingToken, StoreError> {
        let mut inner = self.lock();
        let fence = inner.effective_pointer()?.fence;
        inner.tokens_issued = inner.tokens_issued.max(fence) + 1;
        Ok(inner.tokens_issued)
    }

    /// Writes `plan` to its own file. Writing the same plan again is harmless; a different plan
    /// under a generation already stored intact is refused (plans are immutable, I4).
    pub fn put_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(stored) = inner.load_plan(plan.generation)? {
            return if &stored == plan {
                Ok(())
            } else {
                Err(StoreError::ConflictingPlan(plan.generation))
            };
        }
        let json = serde_json::to_vec(plan).expect("a plan serializes");
        inner
            .files
            .replace(&plan_file(plan.generation), &seal(&json))?;
        Ok(())
    }

    /// Makes plan `generation` the plan in effect if [`decide_apply`] allows it; the decision and
    /// the pointer flip happen under one lock.
    pub fn apply(
        &self,
        generation: Generation,
        token: FencingToken,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut inner = self.lock();
        let effective = inner.effective_pointer()?;
        let stored = inner.load_plan(generation)?.is_some();
        match decide_apply(effective, generation, stored, token) {
            Ok(pointer) => {
                inner.write_pointer(pointer)?;
                Ok(ApplyOutcome::Applied(pointer))
            }
            Err(reason) => Ok(ApplyOutcome::Stale(reason)),
        }
    }

    /// The plan to serve (reconciled: see the module documentation), if any.
    pub fn effective(&self) -> Result<Option<Arc<Plan>>, StoreError> {
        Ok(self.lock().reconcile()?.serving.map(Arc::new))
    }

    /// The highest generation the store holds or points to, intact or not: new plans go above it.
    pub fn highest_generation(&self) -> Result<Generation, StoreError> {
        let inner = self.lock();
        let newest_file = inner.files.plan_generations()?.last().copied().unwrap_or(0);
        let pointed = read_sealed::<Pointer>(inner.files.as_ref(), POINTER_FILE)?
            .map_or(0, |pointer| pointer.generation);
        Ok(newest_file.max(pointed))
    }

    /// The generations of every stored plan file, intact or not.
    pub fn stored_generations(&self) -> Result<BTreeSet<Generation>, StoreError> {
        Ok(self.lock().files.plan_generations()?)
    }

    /// Deletes plan `generation` if [`may_delete`] allows it now; returns whether it did.
    pub fn delete_plan(&self, generation: Generation) -> Result<bool, StoreError> {
        self.lock().delete_plan(generation)
    }

    /// Deletes the plans older than the one in effect, keeping the `keep` newest of them.
    pub fn cleanup(&self, keep: usize) -> Result<Vec<Generation>, StoreError> {
        let mut inner = self.lock();
        let victims = cleanup_victims(&inner.files.plan_generations()?, inner.in_effect()?, keep);
        let mut deleted = Vec::new();
        for victim in victims {
            if inner.delete_plan(victim)? {
                deleted.push(victim);
            }
        }
        Ok(deleted)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the files half-changed (each change is one
        // atomic file replacement), so a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn reconcile(&self) -> io::Result<Reconciled> {
        let pointer = read_sealed::<Pointer>(self.files.as_ref(), POINTER_FILE)?;
        let serving = match pointer {
            Some(pointer) if pointer.generation == NOTHING_PUBLISHED => None,
            Some(pointer) => match self.load_plan(pointer.generation)? {
                Some(plan) => Some(plan),
                None => self.newest_intact_plan()?,
            },
            None => self.newest_intact_plan()?,
        };
        Ok(Reconciled { pointer, serving })
    }

    /// The pointer compare-and-set compares against: the stored one, with the newest token this
    /// store has accepted (which a pointer corrupted while running must not make it forget). If
    /// the pointer was lost while running, the plan served stands in for it.
    fn effective_pointer(&self) -> io::Result<Pointer> {
        let Reconciled { pointer, serving } = self.reconcile()?;
        let generation = match (pointer, serving) {
            (Some(pointer), _) => pointer.generation,
            (None, Some(plan)) => plan.generation,
            (None, None) => NOTHING_PUBLISHED,
        };
        Ok(Pointer {
            generation,
            fence: pointer
                .map_or(0, |pointer| pointer.fence)
                .max(self.highest_accepted),
        })
    }

    /// Gives the store a pointer: a missing or corrupt one is rewritten to the newest intact plan
    /// (I6), or to [`NOTHING_PUBLISHED`] in a new store, so that from here on a plan file without
    /// a pointer to it is only ever a staged plan, never mistaken for the plan in effect.
    fn repair_pointer(&mut self) -> io::Result<()> {
        let Reconciled { pointer, serving } = self.reconcile()?;
        if pointer.is_none() {
            self.write_pointer(Pointer {
                generation: serving.map_or(NOTHING_PUBLISHED, |plan| plan.generation),
                fence: self.highest_accepted,
            })?;
        }
        Ok(())
    }

    fn write_pointer(&mut self, pointer: Pointer) -> io::Result<()> {
        self.highest_accepted = self.highest_accepted.max(pointer.fence);
        let json = serde_json::to_vec(&pointer).expect("a pointer serializes");
        self.files.replace(POINTER_FILE, &seal(&json))
    }

    fn delete_plan(&mut self, generation: Generation) -> Result<bool, StoreError> {
        if !may_delete(generation, self.in_effect()?) {
            return Ok(false);
        }
        self.files.remove(&plan_file(generation))?;
        Ok(true)
    }

    /// The generation I3 protects (with everything newer): the plan served, or the one the
    /// pointer names if that is older (its file may come back intact from a backup).
    fn in_effect(&self) -> io::Result<Option<Generation>> {
        let Reconciled { pointer, serving } = self.reconcile()?;
        let serving = serving.map(|plan| plan.generation);
        let pointed = pointer.map(|pointer| pointer.generation);
        Ok(match (serving, pointed) {
            (Some(serving), Some(pointed)) => Some(serving.min(pointed)),
            (serving, _) => serving,
        })
    }

    /// Plan `generation` if its file is intact.
    fn load_plan(&self, generation: Generation) -> io::Result<Option<Plan>> {
        let plan = read_sealed::<Plan>(self.files.as_ref(), &plan_file(generation))?;
        Ok(plan.filter(|plan| plan.generation == generation))
    }

    fn newest_intact_plan(&self) -> io::Result<Option<Plan>> {
        for generation in self.files.plan_generations()?.into_iter().rev() {
            if let Some(plan) = self.load_plan(generation)? {
                return Ok(Some(plan));
            }
        }
        Ok(None)
    }
}

const POINTER_FILE: &str = "effective";
/// The pointer's generation before any plan is published (plans start at 1).
const NOTHING_PUBLISHED: Generation = 0;
const PLANS_DIR: &str = "plans";

fn plan_file(generation: Generation) -> String {
    format!("{PLANS_DIR}/{generation}.json")
}

fn generation_of(file_name: &str) -> Option<Generation> {
    file_name.strip_suffix(".json")?.parse().ok()
}

/// `<crc32 as 8 hex digits>\n<json>`: truncation or a flipped byte fails the check.
fn seal(json: &[u8]) -> Vec<u8> {
    let mut sealed = format!("{:08x}\n", crc32fast::hash(json)).into_bytes();
    sealed.extend_from_slice(json);
    sealed
}

fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let (header, json) = bytes.split_at_checked(9)?;
    let checksum = std::str::from_utf8(header.strip_suffix(b"\n")?).ok()?;
    let checksum = u32::from_str_radix(checksum, 16).ok()?;
    (crc32fast::hash(json) == checksum).then_some(json)
}

/// The file's value if it exists, passes its checksum and parses; `None` otherwise.
fn read_sealed<T: serde::de::DeserializeOwned>(
    files: &dyn Files,
    name: &str,
) -> io::Result<Option<T>> {
    let Some(bytes) = files.read(name)? else {
        return Ok(None);
    };
    Ok(unseal(&bytes).and_then(|json| serde_json::from_slice(json).ok()))
}

/// Where the store's files live: the only thing that differs between disk and memory.
trait Files: Send {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces `name` with `bytes` atomically: a reader sees the old or the new contents.
    fn replace(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// The generations named by the plan files present.
    fn plan_generations(&self) -> io::Result<BTreeSet<Generation>>;
}

#[derive(Default)]
struct MemoryFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl Files for MemoryFiles {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.files.get(name).cloned())
    }

    fn replace(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.files.insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.files.remove(name);
        Ok(())
    }

    fn plan_generations(&self) -> io::Result<BTreeSet<Generation>> {
        Ok(self
            .files
            .keys()
            .filter_map(|name| generation_of(name.strip_prefix(PLANS_DIR)?.strip_prefix('/')?))
            .collect())
    }
}

struct DiskFiles {
    dir: PathBuf,
    /// Held open (and locked) for the store's lifetime.
    _lock: File,
}

impl DiskFiles {
    fn open(dir: &Path) -> Result<DiskFiles, StoreError> {
        fs::create_dir_all(dir.join(PLANS_DIR))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        lock.try_lock()
            .map_err(|_| StoreError::Locked(dir.to_path_buf()))?;
        Ok(DiskFiles {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Files for DiskFiles {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn replace(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        let temporary = path.with_extension("tmp");
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        sync_parent(&path)
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_parent(&path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn plan_generations(&self) -> io::Result<BTreeSet<Generation>> {
        let mut generations = BTreeSet::new();
        for entry in fs::read_dir(self.dir.join(PLANS_DIR))? {
            if let Some(generation) = entry?.file_name().to_str().and_then(generation_of) {
                generations.insert(generation);
            }
        }
        Ok(generations)
    }
}

/// Makes a rename or removal in the directory durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path.parent().expect("store files live in a directory");
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::plan::RecordSet;

    fn plan(generation: Generation) -> Plan {
        let name = "dynamodb.r1.haven.test.".to_owned();
        let set = RecordSet {
            name: name.clone(),
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, generation as u8))],
            ttl: 30,
            degraded: false,
        };
        Plan {
            generation,
            created_at_ms: 0,
            zone: "haven.test.".to_owned(),
            record_sets: BTreeMap::from([(name, set)]),
        }
    }

    fn served(store: &PlanStore) -> Option<Generation> {
        store.effective().unwrap().map(|plan| plan.generation)
    }

    /// Runs `check` against an in-memory store and an on-disk one: their semantics are the same.
    fn on_both_stores(check: impl Fn(&PlanStore)) {
        check(&PlanStore::in_memory());
        let dir = tempfile::tempdir().unwrap();
        check(&PlanStore::open(dir.path()).unwrap());
    }

    fn publish(store: &PlanStore, generation: Generation, token: FencingToken) -> ApplyOutcome {
        store.put_plan(&plan(generation)).unwrap();
        store.apply(generation, token).unwrap()
    }

    #[test]
    fn apply_is_compare_and_set_on_the_generation() {
        on_both_stores(|store| {
            let token = store.issue_token().unwrap();
            assert!(matches!(publish(store, 2, token), ApplyOutcome::Applied(_)));
            for stale in [1, 2] {
                assert_eq!(
                    publish(store, stale, token),
                    ApplyOutcome::Stale(StaleReason::NotNewer {
                        candidate: stale,
                        effective: 2
                    })
                );
            }
            assert!(matches!(publish(store, 3, token), ApplyOutcome::Applied(_)));
            assert_eq!(served(store), Some(3));
        });
    }

    #[test]
    fn apply_refuses_a_plan_that_is_not_stored() {
        on_both_stores(|store| {
            let token = store.issue_token().unwrap();
            publish(store, 1, token);
            assert_eq!(
                store.apply(5, token).unwrap(),
                ApplyOutcome::Stale(StaleReason::NotStored { candidate: 5 })
            );
            assert_eq!(served(store), Some(1));
        });
    }

    #[test]
    fn an_older_token_is_fenced_out_once_a_newer_one_has_published() {
        on_both_stores(|store| {
            let older = store.issue_token().unwrap();
            let newer = store.issue_token().unwrap();
            assert!(matches!(publish(store, 1, older), ApplyOutcome::Applied(_)));
            assert!(matches!(publish(store, 2, newer), ApplyOutcome::Applied(_)));
            assert_eq!(
                publish(store, 3, older),
                ApplyOutcome::Stale(StaleReason::FencedOut {
                    presented: older,
                    current: newer
                })
            );
            assert_eq!(served(store), Some(2));
        });
    }

    #[test]
    fn clean_up_keeps_the_history_the_plan_in_effect_and_anything_newer() {
        on_both_stores(|store| {
            let token = store.issue_token().unwrap();
            for generation in 1..=3 {
                publish(store, generation, token);
            }
            store.put_plan(&plan(4)).unwrap();
            assert_eq!(store.cleanup(1).unwrap(), vec![1]);
            assert!(!store.delete_plan(3).unwrap(), "the plan in effect");
            assert!(!store.delete_plan(4).unwrap(), "a newer plan");
            assert!(store.delete_plan(2).unwrap());
            assert_eq!(store.stored_generations().unwrap(), BTreeSet::from([3, 4]));
        });
    }

    #[test]
    fn plans_are_immutable() {
        on_both_stores(|store| {
            store.put_plan(&plan(1)).unwrap();
            store.put_plan(&plan(1)).unwrap();
            let mut different = plan(1);
            different.created_at_ms = 99;
            assert!(matches!(
                store.put_plan(&different),
                Err(StoreError::ConflictingPlan(1))
            ));
        });
    }

    /// A store in a temporary directory holding plans 1..=newest, the newest in effect.
    fn disk_store_with_plans(newest: Generation) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let token = store.issue_token().unwrap();
        for generation in 1..=newest {
            publish(&store, generation, token);
        }
        dir
    }

    fn flip_a_byte(path: &Path) {
        let mut bytes = fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    fn truncate(path: &Path) {
        let bytes = fs::read(path).unwrap();
        fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    }

    #[test]
    fn a_truncated_pointer_is_repaired_to_the_newest_intact_plan() {
        let dir = disk_store_with_plans(3);
        truncate(&dir.path().join(POINTER_FILE));
        let store = PlanStore::open(dir.path()).unwrap();
        assert_eq!(served(&store), Some(3));
        let token = store.issue_token().unwrap();
        assert!(
            matches!(store.apply(3, token).unwrap(), ApplyOutcome::Stale(_)),
            "the repaired pointer names plan 3"
        );
    }

    #[test]
    fn a_deleted_pointer_is_repaired_to_the_newest_intact_plan() {
        let dir = disk_store_with_plans(3);
        fs::remove_file(dir.path().join(POINTER_FILE)).unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        assert_eq!(served(&store), Some(3));
        drop(store);
        assert!(dir.path().join(POINTER_FILE).exists());
    }

    #[test]
    fn a_corrupt_plan_in_effect_falls_back_to_the_newest_intact_plan() {
        let dir = disk_store_with_plans(3);
        flip_a_byte(&dir.path().join(plan_file(3)));
        let store = PlanStore::open(dir.path()).unwrap();
        assert_eq!(served(&store), Some(2));
        assert_eq!(
            store.highest_generation().unwrap(),
            3,
            "new plans go above 3"
        );
        assert_eq!(store.cleanup(0).unwrap(), vec![1], "plan 2 is served: kept");

        let token = store.issue_token().unwrap();
        assert!(matches!(
            publish(&store, 4, token),
            ApplyOutcome::Applied(_)
        ));
        assert_eq!(served(&store), Some(4));
    }

    #[test]
    fn files_left_by_a_crash_in_mid_write_are_ignored() {
        let dir = disk_store_with_plans(3);
        fs::write(dir.path().join("effective.tmp"), b"{\"generation\":9").unwrap();
        fs::write(dir.path().join(PLANS_DIR).join("4.tmp"), b"0000").unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        assert_eq!(served(&store), Some(3));
        assert_eq!(
            store.stored_generations().unwrap(),
            BTreeSet::from([1, 2, 3])
        );
    }

    #[test]
    fn with_no_intact_plan_the_store_serves_none() {
        let dir = disk_store_with_plans(2);
        flip_a_byte(&dir.path().join(plan_file(1)));
        truncate(&dir.path().join(plan_file(2)));
        let store = PlanStore::open(dir.path()).unwrap();
        assert_eq!(served(&store), None);
        assert_eq!(store.highest_generation().unwrap(), 2);
    }

    #[test]
    fn a_state_directory_has_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _store = PlanStore::open(dir.path()).unwrap();
        assert!(matches!(
            PlanStore::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Put(Generation),
        Apply(Generation, usize),
        IssueToken,
        Delete(Generation),
        Cleanup(usize),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (1..8u64).prop_map(Operation::Put),
            (1..8u64, 0..3usize)
                .prop_map(|(generation, token)| Operation::Apply(generation, token)),
            Just(Operation::IssueToken),
            (1..8u64).prop_map(Operation::Delete),
            (0..3usize).prop_map(Operation::Cleanup),
        ]
    }

    proptest! {
        /// Whatever is asked of the store, in any order: the plan in effect only moves to newer
        /// plans (I1), is always stored intact (I2), and only older plans disappear (I3).
        #[test]
        fn no_sequence_of_operations_breaks_i1_i2_i3(operations in proptest::collection::vec(operation(), 1..40)) {
            let store = PlanStore::in_memory();
            let mut tokens = vec![store.issue_token().unwrap()];
            let mut in_effect: Option<Generation> = None;
            for operation in operations {
                let stored_before = store.stored_generations().unwrap();
                match operation {
                    Operation::Put(generation) => store.put_plan(&plan(generation)).unwrap(),
                    Operation::Apply(generation, token) => {
                        let token = tokens[token.min(tokens.len() - 1)];
                        if let ApplyOutcome::Applied(pointer) = store.apply(generation, token).unwrap() {
                            prop_assert!(in_effect.is_none_or(|effective| pointer.generation > effective));
                            in_effect = Some(pointer.generation);
                        }
                    }
                    Operation::IssueToken => tokens.push(store.issue_token().unwrap()),
                    Operation::Delete(generation) => {
                        store.delete_plan(generation).unwrap();
                    }
                    Operation::Cleanup(keep) => {
                        store.cleanup(keep).unwrap();
                    }
                }
                prop_assert_eq!(served(&store), in_effect);
                let stored_after = store.stored_generations().unwrap();
                for gone in stored_before.difference(&stored_after) {
                    prop_assert!(may_delete(*gone, in_effect), "deleted {} with {:?} in effect", gone, in_effect);
                }
            }
        }
    }
}
