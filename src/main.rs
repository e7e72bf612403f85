//! `integration-service serve | migrate | openapi | secrets`. Benchmarks are a separate binary, `ss3-bench`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use integration_service::config::Config;
use integration_service::startup::{Application, Roles};
use integration_service::{api, db, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Webhooks, API credentials and marketplace connectors for ShopSTAR3"
)]
struct Cli {
    /// Optional TOML file layered over the embedded defaults (config.default.toml).
    #[arg(long, global = true, env = "SS3_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (default).
    Serve {
        /// Comma-separated roles: api, ingest, worker (default: all).
        #[arg(long, default_value = "api,ingest,worker")]
        roles: Roles,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (no database needed).
    Openapi,
    /// Run one retention pass now, as a worker does every `retention.interval_secs` (removals, and the hourly
    /// statistics of closed days rolled up into daily rows), print what it did and exit.
    Retention,
    /// Secret store maintenance.
    Secrets {
        #[command(subcommand)]
        action: SecretsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Copy every secret of the embedded store to Vault (vault.addr / VAULT_ADDR).
    CopyToVault,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { roles: Roles::ALL });
    if let Command::Openapi = command {
        print!("{}", api::spec::document_text());
        return Ok(());
    }
    // Until the configuration says where traces go, only logs.
    let early = tracing::subscriber::set_default(telemetry::logs_only());
    let mut config = Config::load_with_vault(cli.config.as_deref()).await?;
    drop(early);
    if !matches!(command, Command::Serve { .. }) {
        // One-off commands export no traces.
        config.telemetry.otlp_endpoint.clear();
    }
    let telemetry = telemetry::init(&config.telemetry)?;
    let done = run(command, config).await;
    telemetry.shutdown().await;
    done
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { roles } => serve(config, roles).await,
        Command::Migrate => {
            db::ensure_database(config.database_url.expose()).await?;
            let pool = db::pool(config.database_url.expose(), 2)?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Retention => {
            let pool = db::pool(config.database_url.expose(), 2)?;
            match db::retention::pass(&pool, &config.retention.retention(), chrono::Utc::now())
                .await?
            {
                Some(done) => println!("{done:?}"),
                None => println!("another process is running a retention pass"),
            }
            Ok(())
        }
        Command::Secrets {
            action: SecretsCommand::CopyToVault,
        } => {
            let copied =
                integration_service::secrets::migrate::copy_embedded_to_vault(&config).await?;
            println!("copied {copied} secrets to Vault");
            Ok(())
        }
        Command::Openapi => Ok(()),
    }
}

async fn serve(config: Config, roles: Roles) -> anyhow::Result<()> {
    db::ensure_database(config.database_url.expose()).await?;
    let clock = jobs::clock::for_time_scale(config.worker.time_scale);
    let app = Application::build(config, clock).await?;
    let listener = if roles.api {
        Some(app.bind().await?)
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run(roles, listener, shutdown).await
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    shutdown.cancel();
}
