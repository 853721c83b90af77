//! Any bytes as a DynamoDB request: the first line is the operation name, the rest is the HTTP
//! body. The harness and what it checks are in `crates/server/tests/decoder/mod.rs`, shared with the
//! property test that runs in CI.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/server/tests/decoder/mod.rs"]
mod decoder;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

fuzz_target!(|data: &[u8]| {
    let (operation, body) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    RUNTIME.block_on(async {
        let service = decoder::fixture().await;
        if let Some(answer) = decoder::decode(&service, operation, body).await {
            decoder::check(operation, body, &answer);
        }
    });
});
