//! Mapping errors onto the pool's [`ErrorClass`]es, by SQLSTATE and I/O.

use poolwarden::ErrorClass;
use tokio_postgres::error::SqlState;

use crate::error::Error;

/// The user's override: gets the error and the default class, returns the
/// class the pool should use.
pub type Classifier = dyn Fn(&Error, ErrorClass) -> ErrorClass + Send + Sync;

/// The default classification.
///
/// * [`ErrorClass::Disconnect`]: the connection is closed
///   (`tokio_postgres::Error::is_closed`), any I/O error (reset, EOF,
///   refused), class `08` (connection exceptions), `57P01`
///   (`admin_shutdown`: a fast shutdown or `pg_terminate_backend`),
///   `57P02` (`crash_shutdown`), `57P03` (`cannot_connect_now`: starting
///   up or shutting down).
/// * [`ErrorClass::Broken`]: `25P03` and `57P05` (the server closed this
///   session for idling in a transaction or idling: the others are fine).
/// * [`ErrorClass::Fatal`]: `28P01`/`28000` (bad password, no
///   `pg_hba.conf` entry), `3D000` (unknown database), and errors opening
///   a connection that are neither a server error nor I/O (TLS,
///   authentication method, configuration) (F11).
/// * [`ErrorClass::Keep`]: every other server error, among them `53300`
///   (too many connections: the pool backs off and serves through the
///   connections it has, F9), `40001`, `40P01`, class `23`, `57014`
///   (statement cancelled), and conversion errors.
/// * An [`Error::Deadline`] is [`ErrorClass::Broken`]: this connection is
///   discarded when reported (the cut command is cancelled on the server).
///   Whether the *server* stopped answering is not decided from one slow
///   command: the manager asks the server for a sign of life itself and
///   black-holes the pool when none comes, reported or not (see
///   [`PgManager::unresponsive_after`](crate::PgManager::unresponsive_after)).
/// * An [`Error::PoolClosed`] (a command cut at `close_timeout`) is
///   [`ErrorClass::Broken`].
pub fn classify_error(error: &Error) -> ErrorClass {
    match error {
        Error::Postgres(e) => classify_postgres(e, false),
        Error::Connect { source, .. } => classify_postgres(source, true),
        Error::Deadline { .. } | Error::PoolClosed { .. } => ErrorClass::Broken,
    }
}

/// The class of a driver error; `connecting` when it came from opening the
/// connection.
pub fn classify_postgres(error: &tokio_postgres::Error, connecting: bool) -> ErrorClass {
    if let Some(code) = error.code() {
        return classify_sqlstate(code);
    }
    if error.is_closed() || has_io_source(error) {
        return ErrorClass::Disconnect;
    }
    if connecting {
        ErrorClass::Fatal
    } else {
        ErrorClass::Keep
    }
}

/// The class of a SQLSTATE.
pub fn classify_sqlstate(code: &SqlState) -> ErrorClass {
    let c = code.code();
    match c {
        "57P01" | "57P02" | "57P03" => ErrorClass::Disconnect,
        _ if c.starts_with("08") => ErrorClass::Disconnect,
        "25P03" | "57P05" => ErrorClass::Broken,
        "28P01" | "28000" | "3D000" => ErrorClass::Fatal,
        _ => ErrorClass::Keep,
    }
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        let cases = [
            (SqlState::ADMIN_SHUTDOWN, ErrorClass::Disconnect),
            (SqlState::CRASH_SHUTDOWN, ErrorClass::Disconnect),
            (SqlState::CANNOT_CONNECT_NOW, ErrorClass::Disconnect),
            (SqlState::CONNECTION_FAILURE, ErrorClass::Disconnect),
            (SqlState::CONNECTION_EXCEPTION, ErrorClass::Disconnect),
            (SqlState::INVALID_PASSWORD, ErrorClass::Fatal),
            (
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                ErrorClass::Fatal,
            ),
            (SqlState::INVALID_CATALOG_NAME, ErrorClass::Fatal),
            (SqlState::TOO_MANY_CONNECTIONS, ErrorClass::Keep),
            (SqlState::T_R_SERIALIZATION_FAILURE, ErrorClass::Keep),
            (SqlState::T_R_DEADLOCK_DETECTED, ErrorClass::Keep),
            (SqlState::UNIQUE_VIOLATION, ErrorClass::Keep),
            (SqlState::FOREIGN_KEY_VIOLATION, ErrorClass::Keep),
            (SqlState::QUERY_CANCELED, ErrorClass::Keep),
            (SqlState::SYNTAX_ERROR, ErrorClass::Keep),
            (
                SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                ErrorClass::Broken,
            ),
            (SqlState::from_code("57P05"), ErrorClass::Broken),
        ];
        for (code, class) in cases {
            assert_eq!(classify_sqlstate(&code), class, "{}", code.code());
        }
    }

    #[test]
    fn a_deadline_is_broken_not_a_black_hole() {
        let e = Error::Deadline {
            waited: std::time::Duration::from_secs(1),
        };
        assert_eq!(classify_error(&e), ErrorClass::Broken);
        assert!(e.code().is_none());
    }
}
