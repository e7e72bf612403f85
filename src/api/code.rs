//! The stable problem codes: every `code` a problem document can carry, in one enum. Clients branch on these, so a
//! code is never renamed; the OpenAPI document lists them (schema `ProblemCode`) and, per status, which of them a
//! response with that status can carry.

use poem::http::StatusCode;
use poem_openapi::Enum;
use workflows::RejectReason;

/// Defines [`ProblemCode`] from one table: each code's variant, its spelling, the statuses it is answered with.
macro_rules! problem_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal, [$($status:literal),+];)*) => {
        /// A stable, machine-readable problem code (`urn:ss3:problem:<code>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
        pub enum ProblemCode {
            $($(#[doc = $doc])* #[oai(rename = $code)] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ProblemCode] = &[$(Self::$variant),*];

            /// The code as written in problem documents, e.g. `subscription_not_found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The statuses a response carrying this code can have.
            pub fn statuses(self) -> &'static [u16] {
                match self {
                    $(Self::$variant => &[$($status),+],)*
                }
            }
        }
    };
}

problem_codes! {
    /// A parameter or the body does not parse, or a chunked body came without `Content-Length`.
    InvalidRequest = "invalid_request", [400, 411];
    /// No `Authorization`, or a token that is not a live credential of this service.
    Unauthorized = "unauthorized", [401];
    /// The credential lacks the scope the route needs.
    MissingScope = "missing_scope", [403];
    /// The route is for platform operators; a store's own credential was presented.
    OperatorOnly = "operator_only", [403];
    /// No route at this path.
    NotFound = "not_found", [404];
    /// No subscription with this id in the caller's store.
    SubscriptionNotFound = "subscription_not_found", [404];
    /// No delivery with this id in the caller's store.
    DeliveryNotFound = "delivery_not_found", [404];
    /// No credential with this id in the caller's store.
    CredentialNotFound = "credential_not_found", [404];
    /// No connector with this id in the caller's store.
    ConnectorNotFound = "connector_not_found", [404];
    /// No job with this id on this connector.
    ConnectorJobNotFound = "connector_job_not_found", [404];
    /// The path exists, the method does not (`Allow` lists the ones that do).
    MethodNotAllowed = "method_not_allowed", [405];
    /// The body did not arrive within the read timeout.
    RequestTimeout = "request_timeout", [408];
    /// A unique value is already taken.
    AlreadyExists = "already_exists", [409];
    /// Another credential of the store already has this name.
    CredentialNameTaken = "credential_name_taken", [409];
    /// A generated client id collided with an existing one (retry the request).
    CredentialIdCollision = "credential_id_collision", [409];
    /// The subscription is inactive; activate it first.
    SubscriptionInactive = "subscription_inactive", [409];
    /// The delivery is not in a state that can be re-triggered or resent.
    DeliveryNotRestartable = "delivery_not_restartable", [409];
    /// The connector has no complete credentials, so it cannot be active.
    ConnectorCredentialsMissing = "connector_credentials_missing", [409];
    /// The connector is inactive; activate it first.
    ConnectorInactive = "connector_inactive", [409];
    /// Only dead-lettered or cancelled jobs are re-triggered.
    JobNotRetriggerable = "job_not_retriggerable", [409];
    /// The connector does not poll, or is inactive.
    PollNotPossible = "poll_not_possible", [409];
    /// The body is over the route's size limit.
    PayloadTooLarge = "payload_too_large", [413];
    /// The body is not of the documented media type.
    UnsupportedMediaType = "unsupported_media_type", [415];
    /// `X-SS3-Store-Id` is not a valid store id.
    InvalidStoreId = "invalid_store_id", [422];
    /// The operator token was used without `X-SS3-Store-Id`.
    StoreIdRequired = "store_id_required", [422];
    /// A display name is empty, blank, too long or holds control characters.
    InvalidName = "invalid_name", [422];
    /// A filter parameter is empty, too long or holds control characters.
    InvalidFilter = "invalid_filter", [422];
    /// A subscription's `maxPerSecond` is not a number in (0, 10000].
    InvalidMaxPerSecond = "invalid_max_per_second", [422];
    /// A subscription's payload filter is not an SQL/JSON path predicate (the detail says why).
    InvalidPayloadFilter = "invalid_payload_filter", [422];
    /// A subscription's ordering key is not an SQL/JSON path (the detail says why).
    InvalidOrderingKey = "invalid_ordering_key", [422];
    /// Connector settings are not an object, hold NUL, or the connector refuses them.
    InvalidSettings = "invalid_settings", [422];
    /// An event type or pattern is malformed, or the list is empty or longer than 100.
    InvalidEventType = "invalid_event_type", [422];
    /// A test event names a type the event catalog does not have.
    UnknownEventType = "unknown_event_type", [422];
    /// `maxInFlight` is below 1 or above the operator's bound (`lanes.max_in_flight`).
    InvalidMaxInFlight = "invalid_max_in_flight", [422];
    /// A target URL is not an absolute http(s) URL this API accepts.
    InvalidTargetUrl = "invalid_target_url", [422];
    /// A target URL resolves to an address the target policy forbids.
    TargetNotAllowed = "target_not_allowed", [422];
    /// A scope is unknown, or the list is empty.
    InvalidScope = "invalid_scope", [422];
    /// `expiresAt` is not in the future.
    InvalidExpiry = "invalid_expiry", [422];
    /// `graceSeconds` is over its limit (86400 for a credential, 604800 for a signing secret).
    InvalidGrace = "invalid_grace", [422];
    /// A paging cursor is not one this API returned.
    InvalidCursor = "invalid_cursor", [422];
    /// A status filter is not one of the documented statuses.
    InvalidStatus = "invalid_status", [422];
    /// `from` is not before `to`.
    InvalidDateRange = "invalid_date_range", [422];
    /// A direction filter is not INBOUND or OUTBOUND.
    InvalidDirection = "invalid_direction", [422];
    /// The connector type is not one of `GET /connector-types`.
    UnknownConnectorType = "unknown_connector_type", [422];
    /// The connector does not handle this event type.
    UnsupportedEvent = "unsupported_event", [422];
    /// A poll interval was given for a connector that does not poll.
    ConnectorDoesNotPoll = "connector_does_not_poll", [422];
    /// `pollIntervalSecs` is outside 1-86400.
    InvalidPollInterval = "invalid_poll_interval", [422];
    /// The connector needs credential fields that were not given.
    CredentialsIncomplete = "credentials_incomplete", [422];
    /// The database refused the subscription (a CHECK constraint).
    InvalidSubscription = "invalid_subscription", [422];
    /// The database refused a value (a CHECK constraint).
    InvalidValue = "invalid_value", [422];
    /// The database cannot store a value (SQLSTATE class 22: NUL in text, a number or date out of range).
    DataException = "data_exception", [422];
    /// A value violates an integrity constraint (SQLSTATE class 23).
    ConstraintViolation = "constraint_violation", [422];
    /// A value is too large to store or index (SQLSTATE class 54).
    ProgramLimitExceeded = "program_limit_exceeded", [422];
    /// The driver cannot encode a value.
    UnencodableValue = "unencodable_value", [422];
    /// The event is over `kafka.max_message_bytes`.
    EventTooLarge = "event_too_large", [422];
    /// The event is not JSON.
    EventNotJson = "event_not_json", [422];
    /// The event is JSON, but not an object.
    EventNotObject = "event_not_object", [422];
    /// A string of the event contains U+0000, which cannot be stored.
    NulCharacter = "nul_character", [422];
    /// The event lacks a required field.
    EventMissingField = "event_missing_field", [422];
    /// A field of the event is invalid.
    EventInvalidField = "event_invalid_field", [422];
    /// Our bug or our infrastructure (details are logged, never answered).
    InternalError = "internal_error", [500];
    /// The service sheds load (credential checks or database connections exhausted); see `Retry-After`.
    Overloaded = "overloaded", [503];
    /// The secret store is unavailable; see `Retry-After`.
    SecretStoreUnavailable = "secret_store_unavailable", [503];
    /// The database cannot be reached or refuses the service's login for now; see `Retry-After`.
    DatabaseUnavailable = "database_unavailable", [503];
}

impl ProblemCode {
    /// The codes a response with `status` can carry.
    pub fn for_status(status: u16) -> impl Iterator<Item = ProblemCode> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |c| c.statuses().contains(&status))
    }

    /// The code of a catch-all answer (an error poem raised before or outside a handler) with `status`.
    pub fn for_poem_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            s if s.is_client_error() => Self::InvalidRequest,
            _ => Self::InternalError,
        }
    }
}

impl From<&RejectReason> for ProblemCode {
    /// The code of an event envelope the ingest parser refused (the same reason the quarantine records).
    fn from(reason: &RejectReason) -> Self {
        match reason {
            RejectReason::TooLarge { .. } => Self::EventTooLarge,
            RejectReason::NotJson(_) => Self::EventNotJson,
            RejectReason::NotObject(_) => Self::EventNotObject,
            RejectReason::NulCharacter(_) => Self::NulCharacter,
            RejectReason::MissingField(_) => Self::EventMissingField,
            RejectReason::InvalidField { .. } => Self::EventInvalidField,
        }
    }
}

impl serde::Serialize for ProblemCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_in_snake_case_and_agree_with_the_envelope_reasons() {
        assert_eq!(
            ProblemCode::SubscriptionNotFound.as_str(),
            "subscription_not_found"
        );
        let reason = RejectReason::MissingField("event_id");
        assert_eq!(ProblemCode::from(&reason).as_str(), reason.code());
        let json = serde_json::to_value(ProblemCode::InvalidTargetUrl).expect("serialises");
        assert_eq!(json, serde_json::json!("invalid_target_url"));
    }

    #[test]
    fn every_code_has_a_status() {
        for code in ProblemCode::ALL {
            assert!(!code.statuses().is_empty(), "{code}");
            assert!(!code.as_str().is_empty());
        }
    }
}
