//! The service side of connectors: HTTP to channels with reqwest, and credentials in the secret store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::connectors::{
    Body, ChannelHttp, ChannelRequest, ChannelResponse, CredentialField, Credentials, Method,
};
use async_trait::async_trait;
use jobs::connector::handler::ConnectorSecrets;
use jobs::ports::SecretError;
use tracing::Instrument;
use workflows::ids::ConnectorId;

use crate::delivery::http::{capped_body, client_span, error_chain, record_answer, retry_after};
use crate::delivery::target::{PublicOnlyResolver, TargetError, TargetPolicy};
use crate::secrets::{SecretStore, SecretStoreError, connector_secret_path};

/// Channel answers are kept up to this many bytes (order pages are the largest).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// [`ChannelHttp`] on reqwest: calls to the channels (marketplace APIs), under the same address policy as webhooks
/// (production mode: public addresses only, checked on the resolved addresses at connect time and on IP literals
/// before sending).
pub struct ReqwestChannelHttp {
    client: reqwest::Client,
    policy: TargetPolicy,
}

impl ReqwestChannelHttp {
    /// A client with these timeouts and address policy.
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        policy: TargetPolicy,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("ShopSTAR3-Connectors/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(PublicOnlyResolver::new(policy.clone()))
            .build()?;
        Ok(Self { client, policy })
    }
}

#[async_trait]
impl ChannelHttp for ReqwestChannelHttp {
    /// One call to a channel, in its own client span (a child of the sync attempt's).
    async fn send(&self, request: &ChannelRequest) -> Result<ChannelResponse, String> {
        let (name, method) = match request.method {
            Method::Get => ("GET", reqwest::Method::GET),
            Method::Post => ("POST", reqwest::Method::POST),
            Method::Put => ("PUT", reqwest::Method::PUT),
            Method::Patch => ("PATCH", reqwest::Method::PATCH),
        };
        self.call(method, request)
            .instrument(client_span(name, &request.url))
            .await
    }
}

impl ReqwestChannelHttp {
    async fn call(
        &self,
        method: reqwest::Method,
        request: &ChannelRequest,
    ) -> Result<ChannelResponse, String> {
        let url = url::Url::parse(&request.url).map_err(|e| format!("invalid URL: {e}"))?;
        if let Err(TargetError::NotAllowed(why) | TargetError::Invalid(why)) =
            self.policy.check_literal(&url)
        {
            return Err(format!(
                "refused in production mode: {why} (allow it with connectors.allowed_private_hosts)"
            ));
        }
        let mut builder = self
            .client
            .request(method, url)
            .header("accept", "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(fields) => builder.form(fields),
        };
        let started = Instant::now();
        let sent = builder.send().await;
        record_answer(
            &tracing::Span::current(),
            sent.as_ref().map(|r| r.status().as_u16()),
        );
        let response = sent.map_err(|e| {
            if e.is_timeout() {
                format!("timed out after {:?}", started.elapsed())
            } else {
                error_chain(&e)
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers()).and_then(|d| d.to_std().ok());
        let (body, error) = capped_body(response, BODY_LIMIT).await;
        if let Some(e) = error {
            return Err(format!("reading the answer: {e}"));
        }
        Ok(ChannelResponse {
            status,
            retry_after,
            body,
        })
    }
}

/// Connector credentials in the secret store, at `connector/{config_id}/{api-key|api-secret|refresh-token}`.
pub struct StoreConnectorSecrets(pub Arc<dyn SecretStore>);

fn unavailable(e: SecretStoreError) -> SecretError {
    SecretError::Unavailable(e.to_string())
}

#[async_trait]
impl ConnectorSecrets for StoreConnectorSecrets {
    async fn credentials(&self, config_id: ConnectorId) -> Result<Credentials, SecretError> {
        let mut credentials = Credentials::default();
        for field in CredentialField::ALL {
            if let Some(value) = self
                .0
                .get(&connector_secret_path(config_id, field.path()))
                .await
                .map_err(unavailable)?
            {
                credentials.0.insert(field, value);
            }
        }
        Ok(credentials)
    }
}

/// Write a config's credentials (every field given replaces the stored one; fields not given are removed).
pub async fn store_credentials(
    secrets: &dyn SecretStore,
    config_id: ConnectorId,
    credentials: &Credentials,
) -> Result<(), SecretStoreError> {
    for field in CredentialField::ALL {
        let path = connector_secret_path(config_id, field.path());
        match credentials.0.get(&field) {
            Some(value) => secrets.put(&path, value).await?,
            None => secrets.delete(&path).await?,
        }
    }
    Ok(())
}
