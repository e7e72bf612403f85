//! Debian's chromedriver as a child process of one test: started on a free loopback port in its own process group,
//! ready once its `/status` says so, and killed with the Chromium it started when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use crate::common::wait::pause;

/// How long chromedriver may take to answer its `/status` once started.
const READY: Duration = Duration::from_secs(20);

/// `var` from the environment, unless unset or empty; else `default`.
pub fn binary(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn free_port() -> u16 {
    // Picked here, then released (a small race, as in scripts/test.sh): chromedriver takes its port as an argument.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("addr").port()
}

/// A running chromedriver (`SS3_TEST_CHROMEDRIVER`, else `/usr/bin/chromedriver`), logging into `logs`.
pub struct Chromedriver {
    /// Leader of the process group of chromedriver and the browsers it starts.
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl Chromedriver {
    /// Start it and wait until it is ready for sessions.
    pub async fn start(logs: &Path) -> Self {
        std::fs::create_dir_all(logs).expect("create the log directory");
        let port = free_port();
        let log = logs.join(format!("chromedriver-{port}.log"));
        let bin = binary("SS3_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let child = tokio::process::Command::new(&bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, with the Chromium it starts: `Drop` ends them all at once.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {bin} (scripts/test.sh installs chromium-driver): {e}")
            });
        let mut driver = Self { child, port, log };
        driver.wait_until_ready().await;
        driver
    }

    /// Its WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Poll `/status` until it says ready; fail early if the process exits.
    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited ({status}){}", self.log_tail());
            }
            let answer = http.get(format!("{}/status", self.url())).send().await;
            if let Ok(answer) = answer
                && let Ok(body) = answer.json::<serde_json::Value>().await
                && body["value"]["ready"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready after {READY:?}{}",
                self.log_tail()
            );
            pause().await;
        }
    }

    /// The end of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!(
            "\nchromedriver log {}, last lines:\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Killing the group ends Chromium too (still running when a failed test never closed its session) without
        // the test's runtime, which may be gone.
        let group = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}
