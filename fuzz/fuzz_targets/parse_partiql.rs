//! Arbitrary UTF-8 text as a PartiQL statement: see `haven_expr_fuzz::partiql` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        haven_expr_fuzz::partiql(text);
    }
});
