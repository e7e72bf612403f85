//! A private tansu broker a test can freeze and thaw.

use std::process::{Child, Command, Stdio};

/// A private tansu (in memory) for tests that freeze it; the shared broker must stay up for the other tests.
pub struct OwnBroker {
    pub addr: String,
    child: Child,
}

impl OwnBroker {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu (scripts/test.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Self { addr, child };
            }
            super::wait::pause().await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("tansu did not start");
    }

    /// Unreachable but alive, keeping its data (a restarted in-memory tansu would start empty).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([sig, &self.child.id().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
