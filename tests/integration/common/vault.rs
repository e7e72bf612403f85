//! OpenBao helpers: the shared dev server the script started, and private ones a test can freeze.

use std::process::{Child, Command, Stdio};

use integration_service::config::{Config, Secret};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

/// The shared dev server (address, root token). Vault tests fail (never skip) without it.
pub fn shared() -> (String, String) {
    let addr = std::env::var("SS3_TEST_VAULT_ADDR").expect(
        "SS3_TEST_VAULT_ADDR is not set: run the tests with scripts/test.sh, which starts OpenBao",
    );
    (
        addr,
        std::env::var("SS3_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into()),
    )
}

pub fn client(addr: &str, token: &str) -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(addr)
            .token(token)
            .build()
            .expect("settings"),
    )
    .expect("client")
}

/// The value stored at `<ss3/kv>/<path>`, read directly (not through the service).
pub async fn read_raw(addr: &str, token: &str, path: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Stored {
        value: String,
    }
    let stored: Stored = vaultrs::kv2::read(&client(addr, token), "ss3/kv", path)
        .await
        .expect("read from Vault");
    stored.value
}

/// `config` pointed at Vault, with keys under a prefix private to the test.
pub fn use_vault(config: &mut Config, addr: &str, token: &str, prefix: &str) {
    config.vault.addr = addr.to_owned();
    config.vault.token = Secret::new(token);
    config.vault.prefix = prefix.to_owned();
    config.vault.timeout_ms = 1000;
}

/// A private OpenBao dev server (in memory) for tests that stop it.
pub struct OwnVault {
    pub addr: String,
    child: Child,
}

impl OwnVault {
    pub async fn start() -> Self {
        let bin = std::env::var("SS3_TEST_BAO_BIN")
            .expect("SS3_TEST_BAO_BIN is not set: run the tests with scripts/test.sh");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(bin)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao");
        let addr = format!("http://127.0.0.1:{port}");
        let vault = Self { addr, child };
        for _ in 0..100 {
            if vaultrs::token::lookup_self(&client(&vault.addr, "root"))
                .await
                .is_ok()
            {
                let mut opts = vaultrs::api::sys::requests::EnableEngineRequest::builder();
                vaultrs::sys::mount::enable(
                    &client(&vault.addr, "root"),
                    "ss3/kv",
                    "kv-v2",
                    Some(&mut opts),
                )
                .await
                .expect("enable ss3/kv");
                return vault;
            }
            super::wait::pause().await;
        }
        panic!("OpenBao did not start");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig}");
    }

    /// Unreachable but alive: clients time out (a restarted dev server would lose its data).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for OwnVault {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
