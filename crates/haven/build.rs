//! Link options of the `haven` binary.
//!
//! Relative relocations packed (`-z pack-relative-relocs`, DT_RELR): as a position-independent
//! executable the binary carries about 50,000 relative relocations, which took 1.2 MB of
//! `.rela.dyn` that the dynamic loader reads on every start; the pages it touched were 2 MB of
//! the idle server's resident memory (docs/benchmarks.md, "Start-up and idle memory"). Packed
//! they take 18 KB. The linker packs them only when the C library supports it (glibc 2.36 and
//! later), so a build against an older one still runs.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=haven=-Wl,-z,pack-relative-relocs");
    }
}
