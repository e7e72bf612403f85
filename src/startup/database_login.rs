//! Following a database login kept in Vault: read it again every `vault.refresh_secs` and, when it changed, have
//! every new connection of every role use it (open connections stay as they are; Postgres does not end them when a
//! password changes). Only when the login came from Vault at start-up, not from the file or the environment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Application;
use crate::config::Secret;
use crate::config::from_vault::VaultStore;
use crate::supervisor::{self, Supervisor};

impl Application {
    /// Follow the database login in Vault, when that is where it came from.
    pub(super) fn follow_database_login(
        &self,
        roles_of: &Supervisor,
        shutdown: &CancellationToken,
    ) {
        let Some(vault) = self
            .vault
            .clone()
            .filter(|_| self.config.database_login_from_vault)
        else {
            return;
        };
        let (pools, config) = (self.pools.clone(), self.config.vault.clone());
        let in_use = Arc::new(Mutex::new(self.config.database_url.clone()));
        let period = Duration::from_secs(config.refresh_secs);
        let follow = supervisor::every(period, shutdown.clone(), move || {
            let (vault, config, pools, in_use) =
                (vault.clone(), config.clone(), pools.clone(), in_use.clone());
            async move {
                let store = VaultStore {
                    store: &vault,
                    config: &config,
                };
                match store.database_url().await {
                    Ok(Some(url)) if !same(&in_use, &url) => {
                        match pools.use_database_url(url.expose()) {
                            Ok(()) => {
                                tracing::info!(
                                    "database login changed in Vault: new connections use it"
                                );
                                *in_use.lock().unwrap_or_else(|p| p.into_inner()) = url;
                            }
                            Err(e) => tracing::warn!(
                                error = %e,
                                "the database login in Vault changed but cannot be used; keeping the one in use"
                            ),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        "cannot read the database login from Vault; keeping the one in use"
                    ),
                }
            }
        });
        roles_of.spawn("database login from Vault", async move {
            follow.await;
            Ok(())
        });
    }
}

fn same(in_use: &Mutex<Secret>, url: &Secret) -> bool {
    *in_use.lock().unwrap_or_else(|p| p.into_inner()) == *url
}
