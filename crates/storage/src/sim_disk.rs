//! A simulated disk for fault-injection tests and fuzzing of the embedded engine.
//!
//! [`SimulatedDisk`] is a redb [`StorageBackend`] kept in memory that behaves like a file on a real
//! disk in the ways that matter for durability:
//! - what reads see (the OS page cache) and what survives a power loss (what the last successful
//!   `sync_data` made durable) are kept apart: after [`SimulatedDisk::power_off`], power returns
//!   with the durable bytes plus an arbitrary subset of the writes made since the last sync (the
//!   kernel may have written any of them back, in any order), as a crash of the machine would leave;
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
    /// What a power loss leaves for sure: `contents` as of the last successful sync.
    durable: Vec<u8>,
    /// The writes since the last successful sync, `(offset, bytes)` in order; any of them may
    /// survive a power loss.
    unsynced: Vec<(usize, Vec<u8>)>,
    /// The file may not grow past this many bytes.
    quota: Option<u64>,
    /// Mutating calls (write, set_len, sync) left before one fails with EIO.
    fail_in: Option<u64>,
    /// Mutating calls left before the power goes at the next one.
    power_off_in: Option<u64>,
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

    /// After `calls` more successful writes, extensions or syncs, the power goes at the next one.
    pub fn power_off_after(&self, calls: u64) {
        self.disk().power_off_in = Some(calls);
    }

    /// Lifts the quota and any pending injected failure or power loss.
    pub fn clear_faults(&self) {
        let mut disk = self.disk();
        disk.quota = None;
        disk.fail_in = None;
        disk.power_off_in = None;
    }

    pub fn is_powered_off(&self) -> bool {
        self.disk().powered_off
    }

    /// The machine loses power: every call fails until [`SimulatedDisk::power_on`].
    pub fn power_off(&self) {
        self.disk().powered_off = true;
    }

    /// Power returns, with no faults armed: the file is what the last successful sync left plus
    /// the unsynced writes that `survivors` picks (write `i` survives if bit `i % 64` is set; 0
    /// loses them all). The file keeps its latest length.
    pub fn power_on(&self, survivors: u64) {
        let mut disk = self.disk();
        let mut contents = disk.durable.clone();
        contents.resize(disk.contents.len(), 0);
        for (i, (offset, bytes)) in disk.unsynced.iter().enumerate() {
            let end = offset + bytes.len();
            if survivors & (1 << (i % 64)) != 0 && end <= contents.len() {
                contents[*offset..end].copy_from_slice(bytes);
            }
        }
        disk.durable = contents.clone();
        disk.contents = contents;
        disk.unsynced.clear();
        disk.powered_off = false;
        disk.quota = None;
        disk.fail_in = None;
        disk.power_off_in = None;
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated power loss")
}

impl Disk {
    /// Counts down the injected failure and power loss, and refuses calls while powered off.
    fn mutate(&mut self) -> io::Result<()> {
        match self.power_off_in {
            Some(0) => self.powered_off = true,
            Some(n) => self.power_off_in = Some(n - 1),
            None => {}
        }
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
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check_quota(offset + data.len() as u64)?;
        disk.mutate()?;
        let range = disk.range(offset, data.len())?;
        disk.unsynced.push((range.start, data.to_vec()));
        disk.contents[range].copy_from_slice(data);
        Ok(())
    }
}
