//! The built binary as real processes, configured through the environment as an operator would.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary cargo built for this test run (never one built outside `cargo test`, which could be stale).
pub fn binary() -> String {
    env!("CARGO_BIN_EXE_integration-service").to_owned()
}

/// A running `integration-service serve` process; killed with SIGKILL when dropped.
pub struct ServiceProcess {
    pub child: Child,
    pub roles: String,
}

impl ServiceProcess {
    pub fn spawn(roles: &str, env: &BTreeMap<String, String>, log_name: &str) -> Self {
        Self::spawn_in(roles, env, log_name, None)
    }

    /// The same, in working directory `dir` (where relative paths such as `secrets.key_file` land).
    pub fn spawn_in(
        roles: &str,
        env: &BTreeMap<String, String>,
        log_name: &str,
        dir: Option<&std::path::Path>,
    ) -> Self {
        let log = std::env::temp_dir().join(format!("ss3-{log_name}-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let child = command
            .args(["serve", "--roles", roles])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn integration-service");
        Self {
            child,
            roles: roles.to_owned(),
        }
    }

    /// SIGKILL: no drain, no final commit, no deregistration.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `url` answers 200.
pub async fn wait_healthy(url: &str, within: Duration) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become healthy");
}
