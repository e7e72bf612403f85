//! Signing webhook bodies, and the functions a receiver uses to verify them.
//!
//! Two signatures are sent with every delivery:
//! - `X-SS3-Signature`: lowercase hex of HMAC-SHA256 over the raw body, keyed with the signing secret's
//!   UTF-8 bytes (the whole `whsec_…` string).
//! - Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`): HMAC-SHA256 over
//!   `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of the secret after `whsec_`.
//!   The timestamp gives receivers replay protection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Default tolerance for `webhook-timestamp` when verifying.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Make a signing secret from 32 random bytes (the caller brings the CSPRNG output).
pub fn secret_from_bytes(bytes: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The value of `X-SS3-Signature` for `body`.
pub fn ss3_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac(secret.as_bytes(), &[body]))
}

/// The Standard Webhooks key: the base64 part of the secret after `whsec_` (or the raw bytes if it is not base64).
fn standard_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    B64.decode(encoded)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The value of `webhook-signature` (`v1,<base64>`) for message `msg_id` sent at unix `timestamp`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", B64.encode(mac))
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No signature matched.
    #[error("signature mismatch")]
    Mismatch,
    /// The timestamp is outside the tolerance (possible replay).
    #[error("timestamp outside tolerance")]
    Stale,
    /// A header could not be read.
    #[error("malformed header: {0}")]
    Malformed(&'static str),
}

/// Receiver side: verify `X-SS3-Signature` in constant time.
pub fn verify_ss3(secret: &str, body: &[u8], header: &str) -> Result<(), VerifyError> {
    let presented =
        hex::decode(header.trim()).map_err(|_| VerifyError::Malformed("X-SS3-Signature"))?;
    let expected = hmac(secret.as_bytes(), &[body]);
    if bool::from(presented.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Receiver side: verify Standard Webhooks headers at unix time `now`, accepting timestamps within `tolerance_secs`.
///
/// `signature_header` may hold several space-separated `v1,…` signatures (during secret rotation); one must match.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed("webhook-timestamp"))?;
    if (now - ts).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let expected = standard_signature(secret, msg_id, ts, body);
    let matched = signature_header
        .split_whitespace()
        .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())));
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's test vector: keep both in sync.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] =
        br#"{"eventId":"0192f1d4-8a8e-7c2b-9f3e-4b5a6c7d8e9f","eventType":"order.placed"}"#;
    const MSG_ID: &str = "0192f1d4-0000-7000-8000-000000000001";
    const TS: i64 = 1_767_225_600;

    #[test]
    fn readme_test_vector_holds() {
        // Cross-checked with Python's hmac module; see README "Verifying a delivery".
        let ss3 = "5cb4c3734e0139e0dfe4ebef89e6232e345fb759d6e31d959ce5d80ed7496eb3";
        assert_eq!(ss3_signature(SECRET, BODY), ss3);
        assert_eq!(verify_ss3(SECRET, BODY, ss3), Ok(()));
        let sig = standard_signature(SECRET, MSG_ID, TS, BODY);
        assert_eq!(sig, "v1,/1xXlQyUvacMcRJWmw4pHZ4BzohX6wTsE98KsPcttBE=");
        assert_eq!(
            verify_standard(
                SECRET,
                MSG_ID,
                &TS.to_string(),
                &sig,
                BODY,
                TS + 10,
                DEFAULT_TOLERANCE_SECS
            ),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_or_secret_fails_verification() {
        let sig = ss3_signature(SECRET, BODY);
        assert_eq!(verify_ss3(SECRET, b"{}", &sig), Err(VerifyError::Mismatch));
        assert_eq!(
            verify_ss3("whsec_other", BODY, &sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_ss3(SECRET, BODY, "zz"),
            Err(VerifyError::Malformed("X-SS3-Signature"))
        );
    }

    #[test]
    fn stale_timestamps_are_refused_and_rotation_lists_are_accepted() {
        let sig = standard_signature(SECRET, MSG_ID, TS, BODY);
        assert_eq!(
            verify_standard(
                SECRET,
                MSG_ID,
                &TS.to_string(),
                &sig,
                BODY,
                TS + 301,
                DEFAULT_TOLERANCE_SECS
            ),
            Err(VerifyError::Stale)
        );
        let both = format!("v1,bm90LWl0 {sig}");
        assert_eq!(
            verify_standard(
                SECRET,
                MSG_ID,
                &TS.to_string(),
                &both,
                BODY,
                TS,
                DEFAULT_TOLERANCE_SECS
            ),
            Ok(())
        );
    }
}
