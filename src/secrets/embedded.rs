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

/// Decode the configured key, or read the key file, creating it on first start: a fresh random key, written
/// owner-only (0600, in a 0700 directory) and published atomically, so processes starting together on a shared
/// volume all end up with the one key, and none reads a half-written file.
pub fn load_master_key(configured: &str, key_file: &Path) -> Result<[u8; 32], MasterKeyError> {
    if !configured.is_empty() {
        return decode_key(configured);
    }
    let file_err = |source| MasterKeyError::File {
        path: key_file.display().to_string(),
        source,
    };
    match std::fs::read_to_string(key_file) {
        Ok(text) => decode_key(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            if create_private(key_file, &B64.encode(key)).map_err(file_err)? {
                tracing::warn!(path = %key_file.display(), "generated a new master key for the embedded secret store; back it up");
                return Ok(key);
            }
            // Another process created it first: use theirs.
            decode_key(&std::fs::read_to_string(key_file).map_err(file_err)?)
        }
        Err(e) => Err(file_err(e)),
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], MasterKeyError> {
    B64.decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(MasterKeyError::Malformed)
}

/// Write `text` to a private temporary file beside `path`, then link it to `path`, which fails if `path` exists.
/// Returns whether this call created `path`.
fn create_private(path: &Path, text: &str) -> std::io::Result<bool> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let tmp = dir.join(format!(
        ".master.key.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default()
    }

    /// Catches: a key (or its folder) readable by other users, and processes starting together on one volume
    /// ending with different keys, failing on the file another just created, or reading it half-written.
    #[test]
    fn the_first_start_creates_one_private_key_even_when_processes_race() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join("master.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_master_key("", &path)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let first = *keys[0].as_ref().expect("created");
        for key in &keys {
            assert_eq!(key.as_ref().ok(), Some(&first));
        }
        assert_eq!(mode(&path), 0o600, "key file mode");
        assert_eq!(
            mode(dir.path().join("state").as_path()),
            0o700,
            "folder mode"
        );
        assert_eq!(load_master_key("", &path).ok(), Some(first));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["master.key"], "no temporary file left behind");
    }
}
