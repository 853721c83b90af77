//! The engine suite (`haven_storage::engine_suite`) on the memory engine.

use std::sync::Arc;

use haven_storage::engine_suite::TestEngine;
use haven_storage_memory::MemoryEngine;

fn engines() -> Vec<TestEngine> {
    vec![TestEngine {
        name: "memory".into(),
        engine: Arc::new(MemoryEngine::new()),
        keep: Box::new(()),
    }]
}

haven_storage::engine_suite!(engines);
