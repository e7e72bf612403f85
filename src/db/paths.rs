//! The SQL/JSON paths (PostgreSQL `jsonpath`) of subscriptions, checked and evaluated by Postgres itself: payload
//! filters (predicates over the webhook body) and ordering keys (paths selecting a value of it).

use sqlx::PgPool;

/// Why Postgres refuses `filter` as a payload filter, if it does: not `jsonpath` syntax, or not a predicate (a path
/// such as `$.data.total` selects values; `$.data.total > 100` is a predicate). Evaluated against an empty object
/// without silencing errors, which is when Postgres says a path is not a predicate.
pub async fn check_payload_filter(
    pool: &PgPool,
    filter: &str,
) -> Result<Option<String>, sqlx::Error> {
    refusal(
        sqlx::query("SELECT jsonb_path_match('{}'::jsonb, $1::jsonpath, '{}'::jsonb, false)")
            .bind(filter)
            .execute(pool)
            .await,
    )
}

/// Why Postgres refuses `path` as an ordering key, if it does (not `jsonpath` syntax).
pub async fn check_ordering_key(pool: &PgPool, path: &str) -> Result<Option<String>, sqlx::Error> {
    refusal(
        sqlx::query("SELECT $1::jsonpath")
            .bind(path)
            .execute(pool)
            .await,
    )
}

/// Postgres' reason when a check refused the path: 42601 (syntax error), class 22 (a path that yields no single
/// boolean, 22038, or another data exception such as an invalid `like_regex`). Other errors are the database's.
fn refusal<T>(checked: Result<T, sqlx::Error>) -> Result<Option<String>, sqlx::Error> {
    match checked {
        Ok(_) => Ok(None),
        Err(sqlx::Error::Database(e))
            if e.code()
                .is_some_and(|c| c == "42601" || c.starts_with("22")) =>
        {
            Ok(Some(e.message().to_owned()))
        }
        Err(e) => Err(e),
    }
}

/// Whether `filter` matches `event` (a webhook body), as the fan-out statement decides it: `event @@ filter`, where
/// a predicate that cannot be evaluated (a string compared with a number) does not match.
pub async fn payload_filter_matches(
    pool: &PgPool,
    filter: &str,
    event: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let matched: Option<bool> = sqlx::query_scalar("SELECT $1::jsonb @@ $2::jsonpath")
        .bind(event)
        .bind(filter)
        .fetch_one(pool)
        .await?;
    Ok(matched == Some(true))
}
