//! Which receiver addresses are allowed: parsed URLs, and the SSRF policy applied at creation and at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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
    /// It points at a loopback, private or link-local address.
    #[error(
        "target_url resolves to a non-public address ({0}); allowed only in development mode or via delivery.allowed_private_hosts"
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
        if policy
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
        {
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
        match ips.iter().find(|ip| !is_public(ip)) {
            Some(ip) => Err(TargetError::NotAllowed(ip.to_string())),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(&v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: &Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80) // link-local
}

impl TargetUrl {
    /// The policy check for IP-literal hosts only (no DNS); names pass here and are checked by the resolver.
    pub fn check_literal(&self, policy: &TargetPolicy) -> Result<(), TargetError> {
        let ip = match self.0.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        let allowed = !policy.refuse_private
            || is_public(&ip)
            || policy
                .allowed_hosts
                .iter()
                .any(|h| h.parse::<IpAddr>().ok() == Some(ip));
        if allowed {
            Ok(())
        } else {
            Err(TargetError::NotAllowed(ip.to_string()))
        }
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
