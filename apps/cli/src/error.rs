//! [`DoctorError`]: everything that stops `poolwarden doctor` from
//! diagnosing (exit code 3). Each message is one line that says what went
//! wrong and what to check.

use std::path::PathBuf;
use std::time::Duration;

/// Why the doctor could not diagnose. Always exit code 3.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DoctorError {
    /// The URL does not parse or names an unsupported scheme.
    #[error("bad URL '{url}': {reason}")]
    BadUrl {
        /// The URL as given (password removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing listens there, or the host does not resolve.
    #[error("cannot connect to {addr}: {reason} — is the server running?")]
    Unreachable {
        /// `host:port`.
        addr: String,
        /// The operating system's word, e.g. "connection refused".
        reason: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve host '{host}' — check the host name in the URL")]
    UnknownHost {
        /// The host from the URL.
        host: String,
    },
    /// No answer within `--timeout`.
    #[error(
        "cannot connect to {addr}: no answer within {} — is the server running, and is the host and port right?",
        humantime::format_duration(*.timeout)
    )]
    Timeout {
        /// `host:port`.
        addr: String,
        /// The bound that ran out.
        timeout: Duration,
    },
    /// Wrong user or password.
    #[error("access denied for user '{user}' — check the user and password in the URL")]
    AccessDenied {
        /// The user from the URL.
        user: String,
    },
    /// The database named in the URL does not exist (or the user may not use it).
    #[error("unknown database '{database}' — check the database name in the URL")]
    UnknownDatabase {
        /// The database from the URL.
        database: String,
    },
    /// The server refuses new connections: it is at `max_connections` (F9).
    #[error("{addr} refuses new connections: too many connections (F9) — the server is at max_connections; free some or raise it")]
    TooManyConnections {
        /// `host:port`.
        addr: String,
    },
    /// The server answered with an error we have no better words for.
    #[error("{addr}: server error: {message}")]
    Server {
        /// `host:port`.
        addr: String,
        /// The server's message.
        message: String,
    },
    /// No node of a multi-host URL could be read.
    #[error("no node of the cluster could be read: {0}")]
    NoNode(String),
    /// A query for the server's facts failed.
    #[error("reading the server's settings failed: {0}")]
    Query(String),
    /// The pool configuration file cannot be read or parsed.
    #[error("pool config {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A flag value is invalid or flags contradict each other.
    #[error("{0}")]
    Usage(String),
    /// `--live`: the endpoint answered with a non-success status.
    #[error("{url} answered HTTP {status} — is this the service's /debug/pool endpoint?")]
    HttpStatus {
        /// The endpoint.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// `--live`: the HTTP exchange failed midway.
    #[error("{url}: {reason}")]
    Http {
        /// The endpoint.
        url: String,
        /// What failed.
        reason: String,
    },
    /// `--live`: the body is not a `/debug/pool` document.
    #[error("{url} did not answer with a poolwarden /debug/pool document: {reason}")]
    NotPoolJson {
        /// The endpoint.
        url: String,
        /// The parse error.
        reason: String,
    },
}
