//! Haven in process, for a Rust project's tests: what the pytest fixture is to Python.
//!
//! ```ignore
//! let haven = haven_testing::TestServer::start()?;
//! let config = aws_sdk_dynamodb::Config::builder().endpoint_url(haven.endpoint())/* ... */;
//! ```
//!
//! [`TestServer::start`] runs an in-memory server (nothing touches the disk) on 127.0.0.1 and a free
//! port, on a runtime and thread of its own, so it serves the same from a plain `#[test]` and from
//! inside any async runtime; dropping it stops the server and frees its memory. It is the real
//! server (`haven-server` over `haven-api`), not a mock: the answers are `haven serve`'s. Its test
//! is `crates/haven/tests/in_process.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use haven_api::{Service, ServiceConfig};
use haven_storage_memory::MemoryEngine;
use tokio::sync::oneshot;

/// A running in-memory Haven; stopped when dropped.
pub struct TestServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a fresh server with no tables and returns once it accepts connections.
    pub fn start() -> std::io::Result<TestServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let engine = Arc::new(MemoryEngine::new());
        // Like DynamoDB Local, which projects' tests replace with this, it never throttles.
        let config = ServiceConfig {
            capacity: haven_api::CapacitySettings {
                mode: haven_api::CapacityMode::Off,
                ..Default::default()
            },
            ..ServiceConfig::default()
        };
        let service = Arc::new(Service::new(engine, config).map_err(std::io::Error::other)?);
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        // Entered, not blocked on: `start` may be called from inside another runtime.
        let listener = {
            let _entered = runtime.enter();
            haven_server::listen(loopback)?
        };
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("haven-test-server".into())
            .spawn(move || {
                runtime.block_on(haven_server::run(listener, service, async {
                    let _ = stopped.await;
                }));
            })?;
        Ok(TestServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The endpoint URL to give an SDK (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
