//! `integration-service secrets copy-to-vault`: the migration path from the embedded store to Vault.

use super::SecretStore;
use super::embedded::{EmbeddedSecretStore, load_master_key};
use super::vault::VaultSecretStore;
use crate::config::Config;
use crate::db;

/// Copy every embedded secret to Vault (same paths), verifying each by reading it back. Idempotent: re-running
/// overwrites with the same values. The embedded copies are left in place; delete them once Vault is in use.
pub async fn copy_embedded_to_vault(config: &Config) -> anyhow::Result<usize> {
    anyhow::ensure!(
        config.vault.enabled(),
        "set vault.addr (or VAULT_ADDR) to the Vault to copy into"
    );
    let pool = db::pool(config.database_url.expose(), 2)?;
    let key = load_master_key(config.secrets.master_key.expose(), &config.secrets.key_file)?;
    let embedded = EmbeddedSecretStore::new(pool, key);
    let vault = VaultSecretStore::connect(&config.vault).await?;
    let mut copied = 0;
    for path in embedded.paths().await? {
        let Some(value) = embedded.get(&path).await? else {
            continue;
        };
        vault.put(&path, &value).await?;
        anyhow::ensure!(
            vault.get(&path).await?.as_deref() == Some(value.as_str()),
            "{path} did not read back from Vault"
        );
        copied += 1;
    }
    Ok(copied)
}
