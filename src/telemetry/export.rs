//! The OTLP exporter's HTTP client: the service's reqwest 0.13 (opentelemetry-otlp's own reqwest features would
//! build reqwest 0.12 beside it).

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// Sends export requests on the service's tokio runtime: the SDK's batch processor exports from a thread of its
/// own, outside the runtime, and reqwest needs one.
#[derive(Debug)]
pub struct ReqwestExport {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ReqwestExport {
    /// A client on the runtime this is called from.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder().build()?,
            runtime: tokio::runtime::Handle::try_current()?,
        })
    }
}

#[async_trait]
impl HttpClient for ReqwestExport {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        });
        sent.await?
    }
}
