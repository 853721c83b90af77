//! What `haven` sets up before `main`: mimalloc's arena size (`smaller_arenas` in src/main.rs,
//! for start-up's page faults; docs/benchmarks.md).

use std::process::Command;

/// mimalloc's options as it prints them at start with MIMALLOC_VERBOSE, under `env`.
fn mimalloc_options(env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .envs(env.iter().copied())
        .output()
        .expect("haven runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The default is set by option number from an ELF constructor ahead of mimalloc's: this checks
/// that the number names `arena_reserve` and that mimalloc's environment variable still rules.
#[test]
fn mimalloc_arenas_are_64_mib_unless_mimalloc_arena_reserve_says_otherwise() {
    let options = mimalloc_options(&[]);
    assert!(
        options.contains("option 'arena_reserve': 65536 KiB"),
        "{options}"
    );
    let options = mimalloc_options(&[("MIMALLOC_ARENA_RESERVE", "256MiB")]);
    assert!(
        options.contains("option 'arena_reserve': 262144 KiB"),
        "{options}"
    );
}
