//! The embedded secret store: AES-256-GCM ciphertexts in Postgres; the master key stays outside the database.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{SecretStore, SecretStoreError};

/// Secrets encrypted with a master key, stored in `encrypted_secrets`.
pub struct EmbeddedSecretStore {
    pool: PgPool,
    cipher: Aes256Gcm,
    key_id: String,
}

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// `secrets.master_key` is not base64 of 32 bytes.
    #[error("secrets.master_key must be base64 of exactly 32 bytes")]
    Malformed,
    /// The key file could not be read or created.
    #[error("secrets.key_file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Decode the configured key, or read (creating if missing) the key file.
pub fn load_master_key(configured: &str, key_file: &Path) -> Result<[u8; 32], MasterKeyError> {
    let decode = |s: &str| -> Result<[u8; 32], MasterKeyError> {
        B64.decode(s.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or(MasterKeyError::Malformed)
    };
    if !configured.is_empty() {
        return decode(configured);
    }
    let file_err = |source| MasterKeyError::File {
        path: key_file.display().to_string(),
        source,
    };
    match std::fs::read_to_string(key_file) {
        Ok(text) => decode(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(file_err)?;
            }
            write_private(key_file, &B64.encode(key)).map_err(file_err)?;
            tracing::warn!(path = %key_file.display(), "generated a new master key for the embedded secret store; back it up");
            Ok(key)
        }
        Err(e) => Err(file_err(e)),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

fn unavailable(e: sqlx::Error) -> SecretStoreError {
    SecretStoreError::Unavailable(e.to_string())
}

impl EmbeddedSecretStore {
    /// A store using `key`.
    pub fn new(pool: PgPool, key: [u8; 32]) -> Self {
        let key_id = hex_prefix(&Sha256::digest(key));
        Self {
            pool,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            key_id,
        }
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl EmbeddedSecretStore {
    /// Every stored path (for copying to Vault).
    pub async fn paths(&self) -> Result<Vec<String>, SecretStoreError> {
        sqlx::query_scalar("SELECT path FROM encrypted_secrets ORDER BY path")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl SecretStore for EmbeddedSecretStore {
    async fn get(&self, path: &str) -> Result<Option<String>, SecretStoreError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, nonce, ciphertext FROM encrypted_secrets WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some((key_id, nonce, ciphertext)) = row else {
            return Ok(None);
        };
        if key_id != self.key_id {
            return Err(SecretStoreError::Corrupt(format!(
                "{path} was encrypted with key {key_id}, not the configured key"
            )));
        }
        // The path is authenticated too, so a ciphertext copied to another path does not decrypt.
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: path.as_bytes(),
                },
            )
            .map_err(|_| SecretStoreError::Corrupt(format!("{path} does not decrypt")))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| SecretStoreError::Corrupt(format!("{path} is not UTF-8")))
    }

    async fn put(&self, path: &str, value: &str) -> Result<(), SecretStoreError> {
        let nonce: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: path.as_bytes(),
                },
            )
            .map_err(|_| SecretStoreError::Corrupt("encryption failed".into()))?;
        sqlx::query(
            "INSERT INTO encrypted_secrets (path, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4)
             ON CONFLICT (path) DO UPDATE SET key_id = $2, nonce = $3, ciphertext = $4,
               version = encrypted_secrets.version + 1, updated_at = now()",
        )
        .bind(path)
        .bind(&self.key_id)
        .bind(&nonce[..])
        .bind(ciphertext)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<(), SecretStoreError> {
        sqlx::query("DELETE FROM encrypted_secrets WHERE path = $1")
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
