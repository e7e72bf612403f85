//! The headers a delivery is sent with, rebuilt as the worker builds them (`jobs::webhook::build_request`) from the
//! stored payload and the subscription's signing secret, with the latest attempt's timestamp. Signatures are
//! truncated: a page never shows one whole.

use jobs::ports::DeliveryToSend;
use jobs::webhook::build_request;
use workflows::DeliveryStatus;
use workflows::attempt::AttemptState;

use crate::api::AppState;
use crate::api::deliveries::Delivery;
use crate::secrets::webhook_secret_path;

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

/// (name, value) of every header; signatures truncated; `[]` when the secret cannot be read.
pub async fn sent(state: &AppState, d: &Delivery) -> Vec<(String, String)> {
    let secret = match state
        .secrets
        .get(&webhook_secret_path(d.subscription_id))
        .await
    {
        Ok(Some(secret)) => secret,
        _ => {
            return vec![(
                "(unavailable)".into(),
                "the signing secret could not be read".into(),
            )];
        }
    };
    let at = d.attempts.last().map_or(d.created_at, |a| a.started_at);
    let delivery = DeliveryToSend {
        delivery_id: d.delivery_id,
        subscription_id: d.subscription_id,
        store_id: d.store_id.clone(),
        event_type: d.event_type.clone(),
        payload: d.payload.clone(),
        state: AttemptState {
            status: DeliveryStatus::Pending,
            attempt_number: 0,
            next_retry_at: None,
            dispatch_seq: 0,
        },
        target_url: String::new(),
        subscription_active: true,
    };
    build_request(&delivery, &secret, at.timestamp())
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
