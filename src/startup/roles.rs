//! Running the roles: each role's tasks under one supervisor, so a role that stops stops the process.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Application, Roles, generated_worker_name};
use crate::api;
use crate::ingest::{Ingestor, kafka};
use crate::publisher::Relay;
use crate::supervisor::Supervisor;

impl Application {
    /// Run `roles` until `shutdown`, then stop claiming work, drain in-flight jobs and return.
    /// `listener` is required for the api role (tests pass one bound to port 0). A role that stops on its own
    /// stops the others, and the error names it (`main` then exits non-zero).
    pub async fn run(
        &self,
        roles: Roles,
        listener: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let roles_of = Supervisor::new(&shutdown);
        let shutdown = roles_of.stop();
        if let Some(vault) = &self.vault {
            let renew = vault.clone().keep_token_alive(shutdown.clone());
            roles_of.spawn("vault token renewal", async move {
                renew.await;
                Ok(())
            });
        }
        self.follow_database_login(&roles_of, &shutdown);
        if roles.worker {
            self.start_worker(&roles_of, &shutdown).await?;
        }
        if roles.ingest {
            self.start_ingest(&roles_of, &shutdown).await?;
        }
        if roles.api {
            let listener =
                listener.ok_or_else(|| anyhow::anyhow!("the api role needs a listener"))?;
            self.start_api(&roles_of, listener, shutdown)?;
        }
        roles_of.finish().await
    }

    /// The worker, and with Kafka the outbox relay that publishes what the worker recorded.
    async fn start_worker(
        &self,
        roles_of: &Supervisor,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let name = if self.config.worker.name.is_empty() {
            generated_worker_name()
        } else {
            self.config.worker.name.clone()
        };
        tracing::info!(worker = %name, "starting worker");
        let worker = self.worker(&name).run(shutdown.clone());
        roles_of.spawn("worker", async move {
            worker.await;
            Ok(())
        });
        self.start_upkeep(roles_of, shutdown);
        if !self.config.kafka.enabled() {
            return Ok(());
        }
        let k = &self.config.kafka;
        let topics = jobs::queue::effects::Topics::new(k.publish_topics.clone()).all();
        kafka::create_topics(&k.brokers, &topics, k.create_partitions).await?;
        let relay = Relay::new(
            self.pools.worker.clone(),
            &k.brokers,
            self.state.metrics.clone(),
        )?;
        let relay = relay.run(
            Duration::from_millis(self.config.worker.outbox_poll_ms),
            shutdown.clone(),
        );
        roles_of.spawn("worker (outbox relay)", async move {
            relay.await;
            Ok(())
        });
        Ok(())
    }

    /// The worker's periodic upkeep: retention passes, and auto-disable checks when configured.
    fn start_upkeep(&self, roles_of: &Supervisor, shutdown: &CancellationToken) {
        let retention = crate::db::retention::run(
            self.pools.worker.clone(),
            self.config.retention.retention(),
            Duration::from_secs(self.config.retention.interval_secs),
            shutdown.clone(),
        );
        roles_of.spawn("retention", async move {
            retention.await;
            Ok(())
        });
        let Some(policy) = self.config.auto_disable.policy() else {
            return;
        };
        let topics = jobs::queue::effects::Topics::new(self.config.kafka.publish_topics.clone());
        let check = crate::db::auto_disable::run(
            self.pools.worker.clone(),
            policy,
            (self.state.clock.clone(), topics),
            Duration::from_secs(self.config.auto_disable.check_secs.max(1)),
            shutdown.clone(),
        );
        roles_of.spawn("auto-disable", async move {
            check.await;
            Ok(())
        });
    }

    /// The Kafka consumer, when Kafka is configured (otherwise events arrive over `POST /events` only).
    async fn start_ingest(
        &self,
        roles_of: &Supervisor,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        if !self.config.kafka.enabled() {
            tracing::info!("kafka.brokers is empty: events arrive over POST /events only");
            return Ok(());
        }
        let k = &self.config.kafka;
        kafka::create_topics(&k.brokers, &k.create_topics, k.create_partitions).await?;
        let consumer = kafka::consumer(k)?;
        let ingest = kafka::run(
            consumer,
            Ingestor::new(
                self.pools.ingest.clone(),
                self.state.metrics.clone(),
                self.ingest_handoff(),
            ),
            k.clone(),
            shutdown.clone(),
        );
        roles_of.spawn("ingest", async move {
            ingest.await;
            Ok(())
        });
        Ok(())
    }

    /// The HTTP API on `listener`, and the flush of credentials' last-used times.
    fn start_api(
        &self,
        roles_of: &Supervisor,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let flush = Duration::from_secs(self.config.credentials.last_used_flush_secs.max(1));
        let flusher = self.state.validator.clone().run(flush, shutdown.clone());
        roles_of.spawn("api (last-used flush)", async move {
            flusher.await;
            Ok(())
        });
        let addr: SocketAddr = listener.local_addr()?;
        tracing::info!(%addr, "API listening");
        let http = &self.config.http;
        let app = api::app(
            self.state.clone(),
            api::edge::BodyLimits {
                max_body_bytes: http.max_body_bytes,
                max_event_bytes: self.config.kafka.max_message_bytes,
                read_timeout: Duration::from_millis(http.body_read_timeout_ms),
            },
        );
        let limits = api::server::ServerLimits {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            shutdown_grace: Duration::from_secs(10),
        };
        roles_of.spawn("api", async move {
            api::server::serve(listener, app, limits, shutdown)
                .await
                .map_err(|e| anyhow::anyhow!("its listener failed: {e}"))
        });
        Ok(())
    }
}
