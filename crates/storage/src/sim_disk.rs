//! A simulated disk for fault-injection tests and fuzzing of the embedded engine.
//!
//! [`SimulatedDisk`] is a redb [`StorageBackend`] kept in memory that behaves like a file on a real
//! disk in the ways that matter for durability:
//! - what reads see (the OS page cache) and what survives a power loss (what the last successful
//!   `sync_data` made durable) are kept apart, so [`SimulatedDisk::power_off`] loses exactly the
//!   unsynced writes, as a crash of the machine would;
//! - a quota makes a write or a file extension past it fail with `StorageFull` (ENOSPC), as a full
//!   disk does, and lifting the quota is the space coming back;
//! - [`SimulatedDisk::fail_after`] makes one later write, extension or sync fail with an I/O error
//!   (EIO); a failed sync makes nothing durable, as on Linux.
//!
//! Handles are cheap clones of one shared disk, so a test keeps one to steer the faults while the
//! engine opens (and, after a failure, reopens) backends on the same bytes.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// One simulated disk holding one database file; clones share it.
#[derive(Clone, Default)]
pub struct SimulatedDisk(Arc<Mutex<Disk>>);

#[derive(Default)]
struct Disk {
    /// What reads see: every write so far, synced or not.
    contents: Vec<u8>,
    /// What a power loss leaves: `contents` as of the last successful sync.
    durable: Vec<u8>,
    /// The file may not grow past this many bytes.
    quota: Option<u64>,
    /// Mutating calls (write, set_len, sync) left before one fails with EIO.
    fail_in: Option<u64>,
    /// False between `power_off` and `power_on`: every call fails.
    powered_off: bool,
}

impl std::fmt::Debug for SimulatedDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDisk").finish_non_exhaustive()
    }
}

impl SimulatedDisk {
    pub fn new() -> SimulatedDisk {
        SimulatedDisk::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Limits the file to `bytes` (None: unlimited). Growth past it fails as on a full disk.
    pub fn set_quota(&self, bytes: Option<u64>) {
        self.disk().quota = bytes;
    }

    /// The current file length.
    pub fn len(&self) -> u64 {
        self.disk().contents.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// After `calls` more successful writes, extensions or syncs, the next one fails with EIO.
    pub fn fail_after(&self, calls: u64) {
        self.disk().fail_in = Some(calls);
    }

    /// Lifts the quota and any pending injected failure.
    pub fn clear_faults(&self) {
        let mut disk = self.disk();
        disk.quota = None;
        disk.fail_in = None;
    }

    /// The machine loses power: every call fails until [`SimulatedDisk::power_on`].
    pub fn power_off(&self) {
        self.disk().powered_off = true;
    }

    /// Power returns: the file is what the last successful sync left, with no faults armed.
    pub fn power_on(&self) {
        let mut disk = self.disk();
        disk.contents = disk.durable.clone();
        disk.powered_off = false;
        disk.quota = None;
        disk.fail_in = None;
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated power loss")
}

impl Disk {
    /// Counts down an injected failure and refuses calls while powered off.
    fn mutate(&mut self) -> io::Result<()> {
        if self.powered_off {
            return Err(powered_off());
        }
        match self.fail_in {
            Some(0) => {
                self.fail_in = None;
                Err(io::Error::other("simulated I/O error (EIO)"))
            }
            Some(n) => {
                self.fail_in = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn check_quota(&self, end: u64) -> io::Result<()> {
        match self.quota {
            Some(quota) if end > quota && end > self.contents.len() as u64 => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated full disk (ENOSPC)",
            )),
            _ => Ok(()),
        }
    }

    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(len).ok_or_else(out_of_range)?;
        if end > self.contents.len() {
            return Err(out_of_range());
        }
        Ok(start..end)
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "offset past the end of the file",
    )
}

impl StorageBackend for SimulatedDisk {
    fn len(&self) -> io::Result<u64> {
        let disk = self.disk();
        if disk.powered_off {
            return Err(powered_off());
        }
        Ok(disk.contents.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.disk();
        if disk.powered_off {
            return Err(powered_off());
        }
        let range = disk.range(offset, out.len())?;
        out.copy_from_slice(&disk.contents[range]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check_quota(len)?;
        disk.mutate()?;
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        disk.contents.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutate()?;
        disk.durable = disk.contents.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check_quota(offset + data.len() as u64)?;
        disk.mutate()?;
        let range = disk.range(offset, data.len())?;
        disk.contents[range].copy_from_slice(data);
        Ok(())
    }
}
