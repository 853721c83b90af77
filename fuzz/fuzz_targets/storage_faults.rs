//! Any bytes as a storage scenario: puts, deletes, counters and conditional writes on the embedded
//! engine over a simulated disk, with full disks, I/O errors, restarts and power losses (between
//! steps or in the middle of a commit, keeping any subset of the unsynced writes) in between.
//! `haven_storage::model_check::run` plays it against a `BTreeMap` model and panics at the first
//! difference; the proptest in `crates/storage/src/fault_tests.rs` runs the same checks in CI.
#![no_main]

use haven_storage::model_check::{self, Step};
use libfuzzer_sys::fuzz_target;

/// Steps per input: a scenario stays short enough for thousands of runs a minute.
const MAX_STEPS: usize = 64;

/// Decodes one step from its tag byte and the bytes after it (missing bytes read as zero).
fn step(tag: u8, bytes: &mut impl Iterator<Item = u8>) -> Step {
    let mut next = || bytes.next().unwrap_or(0);
    match tag % 16 {
        0..=4 => {
            let count = next() % 4 + 1;
            Step::Put(
                (0..count)
                    .map(|_| {
                        let key = next() % 32;
                        (key, size(next()))
                    })
                    .collect(),
            )
        }
        5 => Step::Delete(next() % 32),
        6 => Step::DeleteRange(next() % 32, next() % 32),
        7 => Step::AddCounter(next() % 8, next() as i8),
        8 | 9 => Step::Conditional {
            key: next() % 32,
            size: size(next()),
            correct: next() % 4 != 0,
        },
        10 => Step::Quota(u16::from(next() % 64)),
        11 => Step::FailAfter(next() % 48),
        12 => Step::PowerLossAfter(next() % 48, mask(next(), next())),
        13 => Step::ClearFaults,
        14 => Step::Restart,
        _ => Step::Crash(mask(next(), next())),
    }
}

/// Which unsynced writes survive a power loss: a 16-bit pattern repeated.
fn mask(low: u8, high: u8) -> u64 {
    u64::from(u16::from_le_bytes([low, high])) * 0x0001_0001_0001_0001
}

/// Small values most of the time, values of several pages sometimes: the file must grow for a
/// quota to bite.
fn size(byte: u8) -> u16 {
    if byte & 0x80 == 0 {
        u16::from(byte)
    } else {
        u16::from(byte & 0x7f) * 64
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut steps = Vec::new();
    while let Some(tag) = bytes.next()
        && steps.len() < MAX_STEPS
    {
        steps.push(step(tag, &mut bytes));
    }
    model_check::run(&steps);
});
