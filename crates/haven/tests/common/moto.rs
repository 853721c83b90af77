//! moto's S3 server (PyPI `moto[server]`, installed by scripts/test.sh): the S3-compatible
//! endpoint of the tests of the backup store, imports and exports, started per test on a loopback
//! port and stopped with it, with the few S3 calls the tests make themselves (buckets, objects,
//! listings), unsigned as moto accepts them.

use std::time::{Duration, Instant};

/// moto's S3 server (PyPI `moto[server]`, installed by scripts/test.sh) on a free loopback port,
/// stopped by its PID when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto's server starts (pip install 'moto[server]')");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&moto.endpoint).call().is_err() {
            assert!(Instant::now() < deadline, "moto's server did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.endpoint))
            .send_empty()
            .expect("create bucket");
    }

    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        ureq::put(&format!("{}/{bucket}/{key}", self.endpoint))
            .send(bytes)
            .expect("put object");
    }

    /// The object names under `prefix` in `bucket`, as S3 lists them.
    pub fn list(&self, bucket: &str, prefix: &str) -> String {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint);
        let mut answer = ureq::get(&url).call().expect("list objects");
        answer.body_mut().read_to_string().unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
