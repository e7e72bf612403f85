//! Typed identifiers. Each entity's id is its own type, so a subscription id can never be passed where a delivery id
//! is expected; all of them are UUIDs on the wire and in Postgres (`uuid` columns), with the same JSON and text forms.
//!
//! With the `sqlx` feature they bind and decode as Postgres `uuid`; with `openapi` they are path, query and JSON
//! values of the API (documented as `string`, format `uuid`). Neither feature adds I/O to this crate.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::NewType), oai(to_header = false, from_multipart = false))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (v7) id: rows inserted together sit together in their index.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID it wraps.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A webhook subscription: one endpoint of one store, with its event patterns and signing secret.
    SubscriptionId
);
uuid_id!(
    /// One delivery: one event to one subscription, across all of its attempts.
    DeliveryId
);
uuid_id!(
    /// A domain event, as the producer named it (`event_id` of the envelope); the ingest dedupe key.
    EventId
);
uuid_id!(
    /// An API key or OAuth client (the row in `api_credentials`).
    CredentialId
);
uuid_id!(
    /// A store's configured connector (one marketplace account); also the key of its secrets in the secret store.
    ConnectorId
);
uuid_id!(
    /// One connector job (a sync or a push), across all of its attempts.
    ConnectorJobId
);
uuid_id!(
    /// One run in a connector's sync log: an outbound attempt or an inbound poll (time-ordered: the log pages by it).
    SyncRunId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_uuid_text_and_json_forms() {
        let raw = "0190f3a4-5b6c-7d8e-9f00-112233445566";
        let id: SubscriptionId = raw.parse().expect("a uuid");
        assert_eq!(id.to_string(), raw);
        assert_eq!(
            serde_json::to_string(&id).expect("json"),
            format!("\"{raw}\"")
        );
        let back: SubscriptionId = serde_json::from_str(&format!("\"{raw}\"")).expect("json");
        assert_eq!(back, id);
    }
}
