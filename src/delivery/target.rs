//! Which receiver addresses are allowed: parsed URLs, and the SSRF policy applied at creation and at connect time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Whether private addresses may be targeted, and which hosts are allowed anyway.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    /// True in production mode.
    pub refuse_private: bool,
    /// Host names or IP addresses allowed even when private.
    pub allowed_hosts: Arc<Vec<String>>,
}

/// Why a target URL was refused (all map to `invalid_target_url` / `target_not_allowed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute http(s) URL with a host.
    #[error("target_url must be an absolute http or https URL: {0}")]
    Invalid(String),
    /// It points at an address of an IANA special-purpose block (loopback, private, link-local…), directly or
    /// embedded in an IPv6 address.
    #[error(
        "target_url resolves to a non-public address: {0}; allowed only in development mode or via delivery.allowed_private_hosts"
    )]
    NotAllowed(String),
}

/// A parsed receiver URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    /// Parse and check the scheme (no network access).
    pub fn parse(raw: &str) -> Result<Self, TargetError> {
        let url = Url::parse(raw.trim()).map_err(|e| TargetError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::Invalid(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Invalid(
                "needs a host and no credentials".into(),
            ));
        }
        if raw.len() > 2048 {
            return Err(TargetError::Invalid("longer than 2048 characters".into()));
        }
        Ok(Self(url))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Check against `policy`, resolving the host name (creation-time check; the sender checks again at connect).
    pub async fn check(&self, policy: &TargetPolicy) -> Result<(), TargetError> {
        if !policy.refuse_private {
            return Ok(());
        }
        let host = self
            .0
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        if policy.allows_host(&host) {
            return Ok(());
        }
        let ips: Vec<IpAddr> = match self.0.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            _ => {
                let port = self.0.port_or_known_default().unwrap_or(443);
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| TargetError::Invalid(format!("cannot resolve {host}: {e}")))?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        match ips.into_iter().find_map(refusal) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is public: in no IANA special-purpose block, directly or embedded in IPv6 (see `workflows::net`).
pub fn is_public(ip: &IpAddr) -> bool {
    workflows::net::is_public(*ip)
}

fn refusal(ip: IpAddr) -> Option<TargetError> {
    workflows::net::check(ip)
        .err()
        .map(|why| TargetError::NotAllowed(why.to_string()))
}

/// Resolves names and, when the policy refuses private addresses, drops the non-public ones, so DNS rebinding
/// cannot reach them. Used by every outgoing client (webhooks and channel APIs).
pub struct PublicOnlyResolver {
    policy: TargetPolicy,
}

impl PublicOnlyResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: TargetPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.refuse_private || policy.allows_host(&host) {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let first_refusal = addrs.iter().find_map(|a| refusal(a.ip()));
            let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(&a.ip())).collect();
            if kept.is_empty() {
                let why = first_refusal.map(|e| e.to_string()).unwrap_or_default();
                return Err(format!("{host} resolves only to non-public addresses: {why}").into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

impl TargetPolicy {
    /// Whether `host` (a name or an IP address) is allow-listed.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']);
        let ip = host.parse::<IpAddr>().ok();
        self.allowed_hosts.iter().any(|h| {
            h.eq_ignore_ascii_case(host) || (ip.is_some() && h.parse::<IpAddr>().ok() == ip)
        })
    }

    /// The check of a URL whose host is an IP literal (reqwest does not resolve literals, so the resolver never
    /// sees them); names pass here and are checked by [`PublicOnlyResolver`] at connect time.
    pub fn check_literal(&self, url: &Url) -> Result<(), TargetError> {
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if !self.refuse_private || self.allows_host(&ip.to_string()) {
            return Ok(());
        }
        refusal(ip).map_or(Ok(()), Err)
    }
}

impl TargetUrl {
    /// The policy check for IP-literal hosts only (no DNS); names pass here and are checked by the resolver.
    pub fn check_literal(&self, policy: &TargetPolicy) -> Result<(), TargetError> {
        policy.check_literal(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> TargetPolicy {
        TargetPolicy {
            refuse_private: true,
            allowed_hosts: Arc::new(vec!["127.0.0.2".into()]),
        }
    }

    #[test]
    fn only_absolute_http_urls_parse() {
        assert!(TargetUrl::parse("https://example.com/hook").is_ok());
        for bad in [
            "ftp://example.com",
            "/relative",
            "https://user:pw@example.com/",
            "not a url",
            "http://",
        ] {
            assert!(TargetUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn production_refuses_private_addresses_unless_allow_listed() {
        for private in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://169.254.169.254/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.1.1]/",
            "http://localhost:8080/",
        ] {
            let url = TargetUrl::parse(private).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(
                    url.check(&production()).await,
                    Err(TargetError::NotAllowed(_))
                ),
                "{private} allowed"
            );
        }
        let allowed = TargetUrl::parse("http://127.0.0.2:9000/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(allowed.check(&production()).await, Ok(()));
        let public = TargetUrl::parse("http://93.184.216.34/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public.check(&production()).await, Ok(()));
    }
}
