//! Link options of the `haven` binary, for start-up and idle memory (docs/benchmarks.md, "Start-up
//! and idle memory").
//!
//! Relative relocations packed (`-z pack-relative-relocs`, DT_RELR): as a position-independent
//! executable the binary carries about 50,000 relative relocations, which took 1.2 MB of
//! `.rela.dyn` that the dynamic loader reads on every start; the pages it touched were 2 MB of
//! the idle server's resident memory. Packed they take 18 KB. The linker packs them only when the
//! C library supports it (glibc 2.36 and later), so a build against an older one still runs.
//!
//! Functions laid out in the order of `startup-order.txt` (written by `scripts/startup-order.sh`):
//! those start-up and the first request run, then those of the common item requests, ahead of the
//! rest. The kernel maps an executable's code in blocks around each page first touched, so the
//! 1.2 MB of code start-up runs, spread over 20 MB of text, left about 7 MB of it resident.
//! Only LLD (Rust's default linker on x86-64 Linux since 1.90, the workspace's minimum) takes a
//! symbol ordering file; names it does not find (the list is from an older build) are skipped.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=haven=-Wl,-z,pack-relative-relocs");
    }
    if os == "linux" && env == "gnu" && arch == "x86_64" {
        let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("startup-order.txt");
        println!("cargo:rerun-if-changed=build.rs");
        println!("cargo:rerun-if-changed=startup-order.txt");
        println!(
            "cargo:rustc-link-arg-bin=haven=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=haven=-Wl,--no-warn-symbol-ordering");
    }
}
