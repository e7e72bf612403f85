//! The built binary as real processes, configured through the environment as an operator would.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use tokio::sync::watch;

/// The binary cargo built for this test run (never one built outside `cargo test`, which could be stale).
pub fn binary() -> String {
    env!("CARGO_BIN_EXE_integration-service").to_owned()
}

/// The environment every process of one test cluster shares: its database, the operator token, a fresh master key
/// of the embedded secret store, an API on a port the process picks, the cheapest bcrypt cost, and the child log
/// level (`SS3_TEST_CHILD_LOG`, default `warn`); then `extra`, which may override any of them.
pub fn cluster_env(database_url: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    use base64::Engine;
    let key: [u8; 32] = rand::random();
    let log = std::env::var("SS3_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into());
    let base = [
        ("DATABASE_URL", database_url.to_owned()),
        ("SS3_ADMIN_TOKEN", super::ADMIN_TOKEN.to_owned()),
        (
            "SS3_SECRETS__MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode(key),
        ),
        ("SS3_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SS3_CREDENTIALS__BCRYPT_COST", "4".to_owned()),
        ("RUST_LOG", log),
    ];
    base.into_iter()
        .chain(extra.iter().map(|&(k, v)| (k, v.to_owned())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A running `integration-service serve` process; killed with SIGKILL when dropped.
pub struct ServiceProcess {
    pub child: Child,
    pub roles: String,
    /// The API's address as the process reports it once bound (`SS3_LISTEN_ADDR=127.0.0.1:0` picks a free port).
    listening: watch::Receiver<Option<String>>,
    /// Every line logged so far, without colours.
    lines: watch::Receiver<Vec<String>>,
}

impl ServiceProcess {
    pub fn spawn(roles: &str, env: &BTreeMap<String, String>, log_name: &str) -> Self {
        Self::spawn_in(roles, env, log_name, None)
    }

    /// The same, in working directory `dir` (where relative paths such as `secrets.key_file` land). Its log goes
    /// to a file in the temporary directory; the line that reports the bound API address is also read back.
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
        let mut child = command
            .args(["serve", "--roles", roles])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .envs(reported_address_logged(env))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn integration-service");
        let (report, listening) = watch::channel(None);
        let (logged, lines) = watch::channel(Vec::new());
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || copy_log(stderr, out, report, logged));
        Self {
            child,
            roles: roles.to_owned(),
            listening,
            lines,
        }
    }

    /// The API's base URL (`http://127.0.0.1:PORT`) once the process has bound it; fails the test after `within`.
    pub async fn api_url(&self, within: Duration) -> String {
        let mut listening = self.listening.clone();
        let addr = tokio::time::timeout(within, listening.wait_for(Option::is_some))
            .await
            .expect("the process reported its API address in time")
            .expect("the process's log is read")
            .clone()
            .expect("an address");
        format!("http://{addr}")
    }

    /// The first line logged that contains `needle`, once it is; fails the test after `within`.
    pub async fn log_line(&self, needle: &str, within: Duration) -> String {
        let mut lines = self.lines.clone();
        let found = tokio::time::timeout(
            within,
            lines.wait_for(|lines| lines.iter().any(|l| l.contains(needle))),
        )
        .await
        .unwrap_or_else(|_| panic!("the process logged {needle:?} in time:\n{}", self.log()))
        .expect("the process's log is read")
        .iter()
        .find(|l| l.contains(needle))
        .cloned();
        found.expect("the line waited for")
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.lines.borrow().join("\n")
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
            // std offers no wait with a timeout: poll the child's exit.
            std::thread::sleep(super::wait::POLL);
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

/// With `RUST_LOG` set, still let through the start-up line that reports the bound API address.
fn reported_address_logged(env: &BTreeMap<String, String>) -> Option<(&'static str, String)> {
    env.get("RUST_LOG").map(|filter| {
        (
            "RUST_LOG",
            format!("{filter},integration_service::startup=info"),
        )
    })
}

/// Copy the process's log to `out` and, without colours, to `logged`, reporting the address of its "API
/// listening" line on `report`.
fn copy_log(
    stderr: ChildStderr,
    mut out: std::fs::File,
    report: watch::Sender<Option<String>>,
    logged: watch::Sender<Vec<String>>,
) {
    let colours = regex::Regex::new("\x1b\\[[0-9;]*m").expect("regex");
    let addr = regex::Regex::new(r#"addr"?[=:]"?([0-9.]+:[0-9]+)"#).expect("regex");
    for line in std::io::BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        let _ = writeln!(out, "{line}");
        let plain = colours.replace_all(&line, "");
        if plain.contains("API listening")
            && let Some(found) = addr.captures(&plain)
        {
            report.send_replace(Some(found[1].to_owned()));
        }
        logged.send_modify(|lines| lines.push(plain.into_owned()));
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
        super::wait::pause().await;
    }
    panic!("{url} did not become healthy");
}
