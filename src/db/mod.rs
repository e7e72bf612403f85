//! Postgres: the pool, migrations, and one repository module per table family. All SQL lives under here.

pub mod auto_disable;
pub mod connectors;
pub mod credentials;
pub mod deliveries;
pub mod errors;
pub mod events;
pub mod offsets;
pub mod outbox;
pub mod paths;
pub mod rate_limits;
pub mod retention;
pub mod stats;
pub mod subscriptions;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Our migrations (public schema); apalis keeps its own in the `apalis` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connect lazily: the pool reconnects by itself after a Postgres restart.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    role_pool(
        url,
        max_connections,
        Duration::from_secs(5),
        "integration-service",
    )
}

/// A lazily connected pool named `application_name` in `pg_stat_activity`.
fn role_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    application_name: &str,
) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A connection killed by pg_terminate_backend or a restart is found broken here, not mid-query.
        .test_before_acquire(true)
        .connect_lazy_with(connect_options(url, application_name)?))
}

fn connect_options(url: &str, application_name: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(url
        .parse::<PgConnectOptions>()?
        .application_name(application_name))
}

/// One pool per role, so a flood on one role cannot take another's connections (see `[pools]` in the config).
#[derive(Debug, Clone)]
pub struct Pools {
    /// Every HTTP handler, credential validation and its NOTIFY listener.
    pub api: PgPool,
    /// The Kafka consumer.
    pub ingest: PgPool,
    /// Claims, heartbeats, sweeps, the outbox relay and the embedded secret store.
    pub worker: PgPool,
}

/// Each role's `application_name`.
const API: &str = "integration-service api";
const INGEST: &str = "integration-service ingest";
const WORKER: &str = "integration-service worker";

impl Pools {
    /// Split `config.max_db_connections` as `config.pools` says. The API waits `api_acquire_timeout_ms` for a
    /// connection (then answers 503); the other roles wait 5 s and retry.
    pub fn new(config: &crate::config::Config) -> Result<Self, sqlx::Error> {
        let url = config.database_url.expose();
        let sizes = config.pool_sizes();
        let background = Duration::from_secs(5);
        let api_wait = Duration::from_millis(config.pools.api_acquire_timeout_ms.max(1));
        Ok(Self {
            api: role_pool(url, sizes.api, api_wait, API)?,
            ingest: role_pool(url, sizes.ingest, background, INGEST)?,
            worker: role_pool(url, sizes.worker, background, WORKER)?,
        })
    }

    /// Connect to `url` from now on (a rotated login): every new connection of every role uses it; open ones stay
    /// as they are.
    pub fn use_database_url(&self, url: &str) -> Result<(), sqlx::Error> {
        for (pool, name) in [
            (&self.api, API),
            (&self.ingest, INGEST),
            (&self.worker, WORKER),
        ] {
            pool.set_connect_options(connect_options(url, name)?);
        }
        Ok(())
    }

    /// Close all three.
    pub async fn close(&self) {
        tokio::join!(self.api.close(), self.ingest.close(), self.worker.close());
    }
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
