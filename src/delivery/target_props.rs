//! Property tests of the target-URL parser (issue 9: fuzz the parsers). Arbitrary input must never panic, and
//! whatever `TargetUrl::parse` accepts is an absolute http(s) URL with a host and no credentials, whose normalised
//! form parses again to itself (what is stored is what the sender will use).

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use url::Url;

use super::target::{TargetPolicy, TargetUrl, is_public};

fn production() -> TargetPolicy {
    TargetPolicy {
        refuse_private: true,
        allowed_hosts: Arc::new(vec![]),
    }
}

/// Strings shaped like URLs, so the generator reaches the parser's deeper branches (hosts, IPv6, ports, userinfo).
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("http"),
        Just("https"),
        Just("HTTP"),
        Just("ftp"),
        Just("javascript"),
        Just("")
    ];
    let host = prop_oneof![
        "[a-z0-9.-]{0,20}",
        "\\[[0-9a-f:.]{0,40}\\]",
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,4}",
        "0x[0-9a-f]{1,8}",
        any::<String>(),
    ];
    let userinfo = prop_oneof![Just(""), Just("user@"), Just("u:p@"), Just("@")];
    let port = prop_oneof![
        Just(String::new()),
        "[0-9]{0,6}".prop_map(|p| format!(":{p}"))
    ];
    let rest = prop_oneof!["[ -~]{0,30}", any::<String>()];
    (scheme, userinfo, host, port, rest).prop_map(|(s, u, h, p, r)| format!("{s}://{u}{h}{p}/{r}"))
}

fn accepted_is_absolute_http(raw: &str) -> Result<(), TestCaseError> {
    let Ok(target) = TargetUrl::parse(raw) else {
        return Ok(());
    };
    let url =
        Url::parse(target.as_str()).map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
    prop_assert!(
        matches!(url.scheme(), "http" | "https"),
        "{raw:?} gave {url}"
    );
    prop_assert!(url.host().is_some(), "{raw:?} has no host");
    prop_assert!(
        url.username().is_empty() && url.password().is_none(),
        "{raw:?} kept credentials"
    );
    prop_assert!(!url.cannot_be_a_base(), "{raw:?} is not absolute");
    let again = TargetUrl::parse(target.as_str())
        .map_err(|e| TestCaseError::fail(format!("{raw:?} then {e}")))?;
    prop_assert_eq!(again.as_str(), target.as_str());
    // The literal check is what the sender runs on every connection: it must not panic either.
    let _ = target.check_literal(&production());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic_and_only_absolute_http_urls_are_accepted(raw in any::<String>()) {
        accepted_is_absolute_http(&raw)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_only_absolute_http_urls_are_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        accepted_is_absolute_http(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn url_shaped_strings_never_panic_and_only_absolute_http_urls_are_accepted(raw in url_like()) {
        accepted_is_absolute_http(&raw)?;
    }

    #[test]
    fn every_ip_address_is_classified_without_panicking(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>()) {
        let _ = is_public(&IpAddr::from(v4));
        let _ = is_public(&IpAddr::from(v6));
    }
}
