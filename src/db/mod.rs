//! Postgres: the pool, migrations, and one repository module per table family. All SQL lives under here.

pub mod connector_effects;
pub mod connectors;
pub mod credentials;
pub mod deliveries;
pub mod effects;
pub mod errors;
pub mod events;
pub mod outbox;
pub mod queue;
pub mod rate_limits;
pub mod subscriptions;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Our migrations (public schema); apalis keeps its own in the `apalis` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connect lazily: the pool reconnects by itself after a Postgres restart.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A connection killed by pg_terminate_backend or a restart is found broken here, not mid-query.
        .test_before_acquire(true)
        .connect_lazy_with(options.application_name("integration-service")))
}

/// Create the database named in `url` if it does not exist (so `cargo run` works on a fresh machine).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("created the database named in database_url");
    }
    Ok(())
}

/// Run apalis' migrations and ours.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    apalis_postgres::PostgresStorage::setup(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}
