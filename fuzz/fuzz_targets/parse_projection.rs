//! Arbitrary UTF-8 text as a projection expression: see `haven_expr_fuzz::projection` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        haven_expr_fuzz::projection(text);
    }
});
