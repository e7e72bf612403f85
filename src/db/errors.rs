//! The one place that turns SQLSTATEs and constraint names into stable error codes, and that decides whose
//! fault a failed statement is (the data's, or our infrastructure's).

use crate::api::code::ProblemCode;

/// A database error the API can explain to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A unique constraint was violated: the named thing already exists.
    AlreadyExists(ProblemCode),
    /// A named CHECK constraint refused a value: the code names the rule.
    Invalid(ProblemCode),
    /// Any other refusal of the data ([`Fault::Data`]: SQLSTATE class 22 such as NUL in text or a number out of
    /// range, an unnamed class-23 violation, class 54): the request's fault, never ours. A safety net behind the
    /// typed request fields.
    Data(ProblemCode),
}

/// Whose fault a failed statement is. Ingest quarantines on `Data` and retries on `Infrastructure`;
/// the API answers `Data` with a 4xx problem and `Infrastructure` with a 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The values written: the same statement with the same values fails again, so retrying is pointless.
    /// Carries a stable reason code (quarantine rows and problem JSON use it).
    Data(&'static str),
    /// Connection lost, server down or restarting, pool exhausted, a serialization failure or deadlock, or our own
    /// bug (an SQL error of another class): retrying later can succeed, and quarantining would drain good messages.
    Infrastructure,
}

/// Classify `err`. Data errors are SQLSTATE classes 22 (data exception: invalid text, `\u0000` in jsonb,
/// out-of-range numbers and dates), 23 (integrity constraint violation) and 54 (program limit exceeded: a value
/// too large to index or store), and values the driver cannot encode. Everything else is infrastructure.
pub fn fault(err: &sqlx::Error) -> Fault {
    data_fault(err).map_or(Fault::Infrastructure, |code| Fault::Data(code.as_str()))
}

/// The code of a data error (see [`fault`]); `None` for infrastructure.
fn data_fault(err: &sqlx::Error) -> Option<ProblemCode> {
    match err {
        sqlx::Error::Database(db) => match db.code().as_deref().map(|c| c.get(..2)) {
            Some(Some("22")) => Some(ProblemCode::DataException),
            Some(Some("23")) => Some(ProblemCode::ConstraintViolation),
            Some(Some("54")) => Some(ProblemCode::ProgramLimitExceeded),
            _ => None,
        },
        sqlx::Error::Encode(_) => Some(ProblemCode::UnencodableValue),
        _ => None,
    }
}

/// Classify `err` if the client's data caused it; `None` means a 5xx.
pub fn classify(err: &sqlx::Error) -> Option<Conflict> {
    let db = err.as_database_error();
    let constraint = db.and_then(|d| d.constraint()).unwrap_or_default();
    match db.and_then(|d| d.code()).as_deref() {
        Some("23505") => Some(Conflict::AlreadyExists(match constraint {
            "api_credentials_store_name" => ProblemCode::CredentialNameTaken,
            "api_credentials_client_id" => ProblemCode::CredentialIdCollision,
            _ => ProblemCode::AlreadyExists,
        })),
        Some("23514") => Some(Conflict::Invalid(match constraint {
            c if c.starts_with("webhook_subscriptions") => ProblemCode::InvalidSubscription,
            _ => ProblemCode::InvalidValue,
        })),
        _ => data_fault(err).map(Conflict::Data),
    }
}

/// Whether `err` says the database cannot be reached or refuses us for now (a connection that failed or broke, TLS,
/// a closed pool; SQLSTATE classes 08 connection exception, 28 refused login, 53 insufficient resources such as too
/// many connections, and 57P shutdown or start-up): not a bug, and not the request's fault. The API answers 503.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            ["08", "28", "53", "57P"]
                .iter()
                .any(|class| c.starts_with(class))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A server error with a given SQLSTATE, as sqlx would surface it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn db(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Sqlstate(code)))
    }

    /// Catches: a refused login (a rotated password) or a database going down answered 500 instead of 503.
    #[test]
    fn a_refused_login_or_a_lost_server_is_unavailability_not_a_bug() {
        for code in ["28P01", "28000", "08006", "53300", "57P01", "57P03"] {
            assert!(is_unavailable(&db(code)), "SQLSTATE {code}");
        }
        for code in ["42P01", "22P05", "23505", "40001"] {
            assert!(!is_unavailable(&db(code)), "SQLSTATE {code}");
        }
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unavailable(&io) && is_unavailable(&sqlx::Error::PoolClosed));
    }

    #[test]
    fn errors_a_message_can_cause_are_the_datas_fault() {
        for (code, reason) in [
            ("22P05", "data_exception"), // \u0000 in jsonb
            ("22021", "data_exception"), // a NUL byte in text
            ("22008", "data_exception"), // datetime out of range
            ("23505", "constraint_violation"),
            ("23514", "constraint_violation"),
            ("54000", "program_limit_exceeded"), // index row too large
        ] {
            assert_eq!(fault(&db(code)), Fault::Data(reason), "SQLSTATE {code}");
        }
        let encode = sqlx::Error::Encode("cannot encode".into());
        assert_eq!(fault(&encode), Fault::Data("unencodable_value"));
    }

    #[test]
    fn connection_server_and_concurrency_errors_are_retried_as_infrastructure() {
        for code in [
            "40001", "40P01", "08006", "57P01", "53300", "42P01", "XX000",
        ] {
            assert_eq!(fault(&db(code)), Fault::Infrastructure, "SQLSTATE {code}");
        }
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for err in [io, sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert_eq!(fault(&err), Fault::Infrastructure, "{err}");
        }
    }

    #[test]
    fn the_api_explains_data_errors_and_keeps_named_constraints() {
        assert_eq!(
            classify(&db("22P05")),
            Some(Conflict::Data(ProblemCode::DataException))
        );
        assert_eq!(
            classify(&db("23505")),
            Some(Conflict::AlreadyExists(ProblemCode::AlreadyExists))
        );
        assert_eq!(classify(&db("40001")), None);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), None);
    }
}
