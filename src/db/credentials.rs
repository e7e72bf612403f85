//! API credentials and OAuth access tokens. Every management query is filtered by store.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use workflows::StoreId;
use workflows::ids::CredentialId;

/// A credential as stored (the API never shows `hashed_secret`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialRow {
    /// Assigned at insert (UUID v7).
    pub credential_id: CredentialId,
    /// The store it acts for; every management query filters by it.
    pub store_id: String,
    /// The display name (unique per store).
    pub name: String,
    /// API_KEY or OAUTH_CLIENT.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The public part: an API key's prefix, or the OAuth client id.
    pub client_id: String,
    /// Granted scopes (`{resource}:{action}`).
    pub scopes: Vec<String>,
    /// Whether validation may accept it.
    pub is_active: bool,
    /// Last successful validation, coalesced to `credentials.last_used_precision_secs`.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops being valid (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who created it (`X-SS3-Actor`, else `operator`).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (rotation included).
    pub updated_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "credential_id, store_id, name, type, client_id, scopes, is_active, last_used_at, expires_at, created_by, created_at, updated_at"
    };
}

/// What validation needs: the hashes and the state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    /// The credential's id (the validation cache evicts by it).
    pub credential_id: CredentialId,
    /// The store it acts for.
    pub store_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Whether validation may accept it.
    pub is_active: bool,
    /// When it stops being valid (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// bcrypt of the current secret.
    pub hashed_secret: String,
    /// bcrypt of the previous secret, during a rotation grace period.
    pub previous_hashed_secret: Option<String>,
    /// End of the grace period.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// A new credential.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    /// The store it acts for.
    pub store_id: &'a StoreId,
    /// The display name, trimmed (unique per store).
    pub name: &'a str,
    /// API_KEY or OAUTH_CLIENT.
    pub kind: &'a str,
    /// The public part: an API key's prefix, or the OAuth client id.
    pub client_id: &'a str,
    /// bcrypt hash of the secret (the secret itself is never stored).
    pub hashed_secret: &'a str,
    /// Granted scopes, already parsed.
    pub scopes: &'a [String],
    /// When it stops being valid (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: &'a str,
}

/// Insert a new credential; a taken name or client id fails on its unique constraint.
pub async fn insert(pool: &PgPool, c: &NewCredential<'_>) -> Result<CredentialRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO api_credentials (credential_id, store_id, name, type, client_id, hashed_secret, scopes, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
        columns!()
    ))
    .bind(CredentialId::new())
    .bind(c.store_id.as_str())
    .bind(c.name)
    .bind(c.kind)
    .bind(c.client_id)
    .bind(c.hashed_secret)
    .bind(c.scopes)
    .bind(c.expires_at)
    .bind(c.created_by)
    .fetch_one(pool)
    .await
}

/// One credential of a store.
pub async fn get(
    pool: &PgPool,
    store_id: &StoreId,
    id: CredentialId,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM api_credentials WHERE store_id = $1 AND credential_id = $2"
    ))
    .bind(store_id.as_str())
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A page of a store's credentials.
pub async fn list(
    pool: &PgPool,
    store_id: &StoreId,
    after: Option<CredentialId>,
    limit: i64,
) -> Result<Vec<CredentialRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM api_credentials WHERE store_id = $1 AND ($2::uuid IS NULL OR credential_id > $2) ORDER BY credential_id LIMIT $3"
    ))
    .bind(store_id.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Changes; `None` keeps the field. `expires_at: Some(None)` clears the expiry.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// The new display name, trimmed.
    pub name: Option<String>,
    /// The new scopes, already parsed.
    pub scopes: Option<Vec<String>>,
    /// The new expiry; `Some(None)` removes it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// Apply a patch; `None` when the store has no such credential.
pub async fn update(
    pool: &PgPool,
    store_id: &StoreId,
    id: CredentialId,
    p: &Patch,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE api_credentials SET
           name = COALESCE($3, name), scopes = COALESCE($4, scopes),
           expires_at = CASE WHEN $5 THEN $6 ELSE expires_at END,
           is_active = COALESCE($7, is_active), updated_at = now()
         WHERE store_id = $1 AND credential_id = $2 RETURNING ",
        columns!()
    ))
    .bind(store_id.as_str())
    .bind(id)
    .bind(&p.name)
    .bind(&p.scopes)
    .bind(p.expires_at.is_some())
    .bind(p.expires_at.flatten())
    .bind(p.is_active)
    .fetch_optional(pool)
    .await
}

/// Replace the secret; with `grace_until`, the old one keeps working until then.
pub async fn rotate(
    pool: &PgPool,
    store_id: &StoreId,
    id: CredentialId,
    new_hash: &str,
    grace_until: Option<DateTime<Utc>>,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE api_credentials SET
           previous_hashed_secret = CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE hashed_secret END,
           previous_valid_until = $4, hashed_secret = $3, updated_at = now()
         WHERE store_id = $1 AND credential_id = $2 RETURNING ",
        columns!()
    ))
    .bind(store_id.as_str())
    .bind(id)
    .bind(new_hash)
    .bind(grace_until)
    .fetch_optional(pool)
    .await
}

/// Delete (its access tokens go with it).
pub async fn delete(
    pool: &PgPool,
    store_id: &StoreId,
    id: CredentialId,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM api_credentials WHERE store_id = $1 AND credential_id = $2")
            .bind(store_id.as_str())
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A row of [`SecretRow`] with the client id it was found by.
#[derive(sqlx::FromRow)]
struct KeyedSecretRow {
    client_id: String,
    #[sqlx(flatten)]
    row: SecretRow,
}

/// Look credentials up by their public parts (the validation path, batched): the rows found, by client id.
pub async fn by_client_ids(
    pool: &PgPool,
    client_ids: &[String],
) -> Result<Vec<(String, SecretRow)>, sqlx::Error> {
    let rows: Vec<KeyedSecretRow> = sqlx::query_as(
        "SELECT client_id, credential_id, store_id, scopes, is_active, expires_at, hashed_secret, previous_hashed_secret,
                previous_valid_until
         FROM api_credentials WHERE client_id = ANY($1)",
    )
    .bind(client_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.client_id, r.row)).collect())
}

/// Store an access token's hash.
pub async fn insert_token(
    pool: &PgPool,
    hash: &[u8],
    credential_id: CredentialId,
    scopes: &[String],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO oauth_access_tokens (token_hash, credential_id, scopes, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(credential_id)
        .bind(scopes)
        .bind(expires_at)
        .execute(pool)
        .await?;
    // Expired tokens are useless: drop a few on each issue so the table does not grow without bound.
    sqlx::query("DELETE FROM oauth_access_tokens WHERE token_hash IN (SELECT token_hash FROM oauth_access_tokens WHERE expires_at < now() - interval '1 hour' LIMIT 100)")
        .execute(pool)
        .await?;
    Ok(())
}

/// An access token with its client's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// The OAuth client that was issued the token.
    pub credential_id: CredentialId,
    /// The client's store.
    pub store_id: String,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// The token's expiry.
    pub expires_at: DateTime<Utc>,
    /// Whether the client is active (a deactivated client's tokens stop working).
    pub is_active: bool,
    /// The client's own expiry.
    pub client_expires_at: Option<DateTime<Utc>>,
}

/// A row of [`TokenRow`] with the hash it was found by.
#[derive(sqlx::FromRow)]
struct KeyedTokenRow {
    token_hash: Vec<u8>,
    #[sqlx(flatten)]
    row: TokenRow,
}

/// Look access tokens up by their hashes (batched): the rows found, by hash.
pub async fn tokens(
    pool: &PgPool,
    hashes: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, TokenRow)>, sqlx::Error> {
    let rows: Vec<KeyedTokenRow> = sqlx::query_as(
        "SELECT t.token_hash, t.credential_id, c.store_id, t.scopes, t.expires_at, c.is_active,
                c.expires_at AS client_expires_at
         FROM oauth_access_tokens t JOIN api_credentials c USING (credential_id) WHERE t.token_hash = ANY($1)",
    )
    .bind(hashes)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.token_hash, r.row)).collect())
}

/// Write coalesced `last_used_at` values in one statement (never moving one backwards).
pub async fn touch(
    pool: &PgPool,
    ids: &[CredentialId],
    at: &[DateTime<Utc>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_credentials c SET last_used_at = GREATEST(c.last_used_at, i.at)
         FROM unnest($1::uuid[], $2::timestamptz[]) AS i(id, at) WHERE c.credential_id = i.id",
    )
    .bind(ids)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Tell every process that a credential changed (they evict it from their validation caches).
pub async fn notify_changed(pool: &PgPool, id: CredentialId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify('ss3_credentials_changed', $1)")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(())
}
