//! The headers a delivery is sent with, rebuilt as the worker builds them (`jobs::webhook::build_request`) from the
//! stored payload and the subscription's signing secret, with the latest attempt's timestamp. Signatures are
//! truncated: a page never shows one whole.

use chrono::{DateTime, Utc};
use jobs::ports::{DeliveryToSend, KeyVersions, SigningKeys};
use jobs::webhook::{body_bytes, build_request};
use workflows::DeliveryStatus;
use workflows::attempt::AttemptState;

use crate::api::AppState;
use crate::api::deliveries::Delivery;
use crate::secrets::webhook_secret_version_path;

fn truncated(value: &str) -> String {
    value
        .split(' ')
        .map(|sig| match sig.char_indices().nth(16) {
            Some((cut, _)) => format!("{}…", &sig[..cut]),
            None => sig.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys that signed the latest attempt (sent at `at`): the current version, and the previous one if its grace
/// had not ended.
async fn keys(state: &AppState, d: &Delivery, at: DateTime<Utc>) -> Option<SigningKeys> {
    let (current, previous_until): (i32, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT secret_version, previous_secret_until FROM webhook_subscriptions WHERE subscription_id = $1",
    )
    .bind(d.subscription_id.uuid())
    .fetch_optional(&state.pool)
    .await
    .ok()??;
    let versions = KeyVersions {
        current,
        previous_until,
    };
    let read = |version| webhook_secret_version_path(d.subscription_id, version);
    let current = state.secrets.get(&read(versions.current)).await.ok()??;
    let previous = match versions.previous_at(at) {
        Some(version) => state.secrets.get(&read(version)).await.ok().flatten(),
        None => None,
    };
    Some(SigningKeys { current, previous })
}

/// (name, value) of every header; signatures truncated; a note instead when the secret cannot be read.
pub async fn sent(state: &AppState, d: &Delivery) -> Vec<(String, String)> {
    let at = d.attempts.last().map_or(d.created_at, |a| a.started_at);
    let Some(keys) = keys(state, d, at).await else {
        return vec![(
            "(unavailable)".into(),
            "the signing secret could not be read".into(),
        )];
    };
    let delivery = DeliveryToSend {
        delivery_id: d.delivery_id,
        subscription_id: d.subscription_id,
        store_id: d.store_id.clone(),
        event_type: d.event_type.clone(),
        // Serialised as the worker serialises it, so the signatures shown are those sent.
        body: body_bytes(&d.payload),
        occurred_at: d.created_at,
        state: AttemptState {
            status: DeliveryStatus::Pending,
            attempt_number: 0,
            next_retry_at: None,
            dispatch_seq: 0,
        },
        target_url: String::new(),
        subscription_active: true,
        keys: KeyVersions::default(),
        max_per_second: None,
        trace_context: None,
        ordered: false,
    };
    build_request(&delivery, &keys, at.timestamp())
        .headers
        .into_iter()
        .map(|(k, v)| {
            let v = if k.contains("signature") {
                truncated(&v)
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_are_cut_each() {
        let t = super::truncated("v1,abcdefghijklmnopqrstuvwxyz v1,0123456789abcdefXYZ");
        assert_eq!(t, "v1,abcdefghijklm… v1,0123456789abc…");
    }
}
