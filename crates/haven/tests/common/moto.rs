//! moto's S3 server for the tests of the backup store and of exports: an S3-compatible endpoint
//! on a loopback port, started per test and stopped with it.

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
