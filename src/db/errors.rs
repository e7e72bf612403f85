//! The one place that turns SQLSTATEs and constraint names into stable error codes.

/// A database error the API can explain to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A unique constraint was violated: the named thing already exists.
    AlreadyExists(&'static str),
    /// A CHECK constraint refused a value.
    Invalid(&'static str),
    /// Postgres could not take a value as data (SQLSTATE class 22: NUL in text, a string too long, a number
    /// out of range…): the request's fault, never ours. A safety net behind the typed request fields.
    Data(&'static str),
}

/// Classify `err` if it is a constraint violation we know how to explain.
pub fn classify(err: &sqlx::Error) -> Option<Conflict> {
    let db = err.as_database_error()?;
    let constraint = db.constraint().unwrap_or_default();
    match db.code().as_deref() {
        Some("23505") => Some(Conflict::AlreadyExists(match constraint {
            "api_credentials_store_name" => "credential_name_taken",
            "api_credentials_client_id" => "credential_id_collision",
            _ => "already_exists",
        })),
        Some("23514") => Some(Conflict::Invalid(match constraint {
            c if c.starts_with("webhook_subscriptions") => "invalid_subscription",
            _ => "invalid_value",
        })),
        Some(code) if code.starts_with("22") => Some(Conflict::Data("unstorable_value")),
        _ => None,
    }
}
