//! Arbitrary UTF-8 text as an update expression: see `haven_expr_fuzz::update` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        haven_expr_fuzz::update(text);
    }
});
