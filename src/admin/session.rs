//! Admin panel sessions: server-side rows (`admin_sessions`), a random id in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` behind https), a CSRF token per session that every state-changing form carries, revoked at sign-out.
//! A store key's session lasts only while the key is valid; the session's store and scopes are the API's
//! [`StoreScope`], so the pages call the API's own functions with the same authorisation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use poem::Request;
use poem::http::header;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use workflows::StoreId;
use workflows::ids::CredentialId;

use crate::api::auth::StoreScope;

/// The session cookie's name.
pub const COOKIE: &str = "ss3_admin";

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// What the API would grant this admin.
    pub scope: StoreScope,
    /// The token every state-changing form must carry.
    pub csrf: String,
    hash: Vec<u8>,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// Who signs in: a store key (its credential id and scopes) or an operator acting on a store.
pub struct SignIn {
    /// The store the pages act on.
    pub store_id: StoreId,
    /// The API key signed in with (`None`: an operator).
    pub credential_id: Option<CredentialId>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// Open a session; returns the cookie value (the only place the id ever is).
pub async fn open(pool: &PgPool, who: &SignIn, ttl_secs: u64) -> sqlx::Result<String> {
    let id = random_token();
    let ttl = Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
    sqlx::query(
        "INSERT INTO admin_sessions (session_hash, store_id, credential_id, operator, scopes, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(hash(&id))
    .bind(who.store_id.as_str())
    .bind(who.credential_id.map(|c| c.uuid()))
    .bind(who.credential_id.is_none())
    .bind(&who.scopes)
    .bind(random_token())
    .bind(Utc::now() + ttl)
    .execute(pool)
    .await?;
    Ok(id)
}

/// The request's session cookie value, if any.
pub fn cookie_value(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The request's live session: not revoked, not expired, and for a store key, the key still active and unexpired.
pub async fn current(pool: &PgPool, req: &Request) -> sqlx::Result<Option<Session>> {
    let Some(hash) = cookie_value(req).as_deref().map(hash) else {
        return Ok(None);
    };
    let row: Option<(String, bool, Vec<String>, String)> = sqlx::query_as(
        "SELECT s.store_id, s.operator, s.scopes, s.csrf_token
         FROM admin_sessions s LEFT JOIN api_credentials c USING (credential_id)
         WHERE s.session_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
           AND (s.operator OR (c.is_active AND (c.expires_at IS NULL OR c.expires_at > now())))",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(store, operator, scopes, csrf)| {
        Some(Session {
            scope: StoreScope {
                store_id: StoreId::parse(&store).ok()?,
                scopes,
                operator,
            },
            csrf,
            hash,
        })
    }))
}

/// End a session (sign-out): its cookie is worthless from now on.
pub async fn revoke(pool: &PgPool, session: &Session) -> sqlx::Result<()> {
    sqlx::query("UPDATE admin_sessions SET revoked_at = now() WHERE session_hash = $1")
        .bind(&session.hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// The `Set-Cookie` value carrying `id` (empty and expired: clears it).
pub fn set_cookie(id: &str, secure: bool, max_age_secs: u64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

/// Whether the request came over https (directly, or through a proxy that says so).
pub fn is_https(req: &Request) -> bool {
    req.uri().scheme_str() == Some("https")
        || req
            .header("x-forwarded-proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}
