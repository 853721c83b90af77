//! Where backups live: a store of named objects outside the data directory, so that losing the
//! data directory (or the whole machine, for a store on other disks or an S3 bucket) does not
//! lose the backups.
//!
//! The store is deliberately an object store's contract (put a whole object, get it, list by
//! prefix, delete), so that a directory and an S3 bucket hold the same layout and a backup copied
//! from one to the other stays usable. Calls block: the backup and restore workers run them on
//! blocking threads, never on the request path's async workers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a store call failed; the operations answer InternalServerError and log it.
#[derive(Debug, thiserror::Error)]
#[error("backup store: {0}")]
pub struct StoreError(pub String);

/// A store of objects named by `/`-separated keys.
pub trait BackupStore: Send + Sync + 'static {
    /// Writes a whole object, replacing any object of that name; readers never see half of it.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The object's bytes, or None when there is no such object.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The names of the objects whose names start with `prefix` and have no `/` after it (one
    /// level, as S3 lists with a delimiter), in byte order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Removes an object; removing one that is not there is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Objects as files under a root directory (a key's `/` are subdirectories).
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let safe = key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
        if !safe {
            return Err(StoreError(format!("invalid object name {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError(format!("{what} {}: {error}", path.display()))
}

impl BackupStore for DirStore {
    /// Written to a temporary file, synced, then renamed over the name: a crash leaves the old
    /// object or the new one, never a torn one.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        written.map_err(|e| io_error("cannot write", &temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io_error("cannot rename", &path, e))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let directory = if folder.is_empty() {
            self.root.clone()
        } else {
            self.path(folder)?
        };
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("cannot list", &directory, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list", &directory, e))?;
            let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let name = if folder.is_empty() {
                file_name.clone()
            } else {
                format!("{folder}/{file_name}")
            };
            if is_file && name.starts_with(prefix) && !file_name.contains(".tmp-") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("cannot delete", &path, e))
            }
            _ => Ok(()),
        }
    }
}

/// Objects in memory, for `haven serve --in-memory` without a backup directory: backups then
/// last as long as the server, like its tables.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl BackupStore for MemoryStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().unwrap();
        objects.insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let objects = self.objects.lock().unwrap();
        let names = objects.range(prefix.to_string()..);
        Ok(names
            .map(|(name, _)| name)
            .take_while(|name| name.starts_with(prefix))
            .filter(|name| !name[prefix.len()..].contains('/'))
            .cloned()
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn BackupStore) {
        store.put("backups/a.json", b"one").unwrap();
        store.put("backups/a/part-1", b"two").unwrap();
        store.put("backups/b.json", b"three").unwrap();
        store.put("backups/a.json", b"four").unwrap();
        assert_eq!(store.get("backups/a.json").unwrap().unwrap(), b"four");
        assert_eq!(store.get("backups/c.json").unwrap(), None);
        assert_eq!(
            store.list("backups/").unwrap(),
            ["backups/a.json", "backups/b.json"]
        );
        assert_eq!(store.list("backups/a/").unwrap(), ["backups/a/part-1"]);
        store.delete("backups/a.json").unwrap();
        store.delete("backups/a.json").unwrap();
        assert_eq!(store.list("backups/").unwrap(), ["backups/b.json"]);
    }

    #[test]
    fn directory_and_memory_stores_agree() {
        let folder = tempfile::tempdir().unwrap();
        exercise(&DirStore::new(folder.path()));
        exercise(&MemoryStore::default());
    }

    #[test]
    fn directory_store_refuses_names_that_leave_it() {
        let folder = tempfile::tempdir().unwrap();
        let store = DirStore::new(folder.path().join("store"));
        assert!(store.put("../escape", b"x").is_err());
        assert!(store.get("a//b").is_err());
    }
}
