//! The one error type of the testkit.

use std::time::Duration;

/// Everything that can go wrong while managing a disposable test server.
///
/// Messages are meant to be read by a person looking at a failed test: they
/// say which server, what happened and, where the server wrote a log, the
/// tail of that log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A server or client binary could not be found on this machine.
    #[error("{what} not found (looked in {searched}); install it: {install}")]
    BinaryNotFound {
        /// What was looked for, e.g. "mariadbd or mysqld".
        what: String,
        /// Where it was looked for.
        searched: String,
        /// The command that installs it, e.g. "apt-get install -y mariadb-server".
        install: &'static str,
    },

    /// The OS user a server must run as does not exist.
    #[error(
        "OS user `{user}` not found (the server refuses to run as root); install it: {install}"
    )]
    UserNotFound {
        /// The missing user name.
        user: String,
        /// The command that creates it.
        install: &'static str,
    },

    /// An I/O operation failed (spawning a process, creating a directory, ...).
    #[error("{context}: {source}")]
    Io {
        /// What the testkit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Sending a signal to a server process failed.
    #[error("sending {signal} to {server} (pid {pid}) failed: {source}")]
    Signal {
        /// The server, e.g. "mariadbd".
        server: &'static str,
        /// The signal's name.
        signal: String,
        /// The process id.
        pid: u32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },

    /// Initialising the data directory failed.
    #[error("{tool} failed ({status}):\n{output}")]
    Init {
        /// The tool that failed, e.g. "mariadb-install-db".
        tool: String,
        /// Its exit status.
        status: String,
        /// What it printed (stdout and stderr).
        output: String,
    },

    /// The server process exited before it became ready.
    #[error("{server} on port {port} exited during startup ({status}); last lines of its log:\n{log_tail}")]
    ExitedDuringStartup {
        /// The server, e.g. "mariadbd".
        server: &'static str,
        /// The port it was started on.
        port: u16,
        /// Its exit status.
        status: String,
        /// The last lines of its log, from this start on.
        log_tail: String,
    },

    /// The server did not become ready in time (it was killed).
    #[error("{server} on port {port} was not ready after {waited:?} (killed it); last error: {last_error}; last lines of its log:\n{log_tail}")]
    StartupTimeout {
        /// The server, e.g. "mariadbd".
        server: &'static str,
        /// The port it was started on.
        port: u16,
        /// How long the testkit waited.
        waited: Duration,
        /// The last readiness check's failure.
        last_error: String,
        /// The last lines of its log, from this start on.
        log_tail: String,
    },

    /// The server did not exit in time after a stop or kill signal.
    #[error("{server} (pid {pid}) did not exit within {waited:?} after {signal}")]
    ExitTimeout {
        /// The server, e.g. "mariadbd".
        server: &'static str,
        /// The process id.
        pid: u32,
        /// The signal that was sent.
        signal: String,
        /// How long the testkit waited.
        waited: Duration,
    },

    /// An administrative SQL command failed.
    #[error("{client} failed ({status}) running `{sql}`: {stderr}")]
    Admin {
        /// The client binary, e.g. "mariadb".
        client: String,
        /// The SQL that was run.
        sql: String,
        /// The client's exit status.
        status: String,
        /// What the client printed on stderr.
        stderr: String,
    },

    /// An administrative SQL command did not finish in time (the client was killed).
    #[error("{client} did not finish within {waited:?} running `{sql}` (is the server paused?)")]
    AdminTimeout {
        /// The client binary, e.g. "mariadb".
        client: String,
        /// The SQL that was run.
        sql: String,
        /// How long the testkit waited.
        waited: Duration,
    },

    /// The operation needs a running server, but it is stopped.
    #[error("{server} is not running")]
    NotRunning {
        /// The server, e.g. "mariadbd".
        server: &'static str,
    },

    /// `start_again` was called while the server still runs.
    #[error("{server} is already running (pid {pid}); stop or kill it first")]
    AlreadyRunning {
        /// The server, e.g. "mariadbd".
        server: &'static str,
        /// The process id.
        pid: u32,
    },
}

impl TestkitError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestkitError::Io {
            context: context.into(),
            source,
        }
    }
}
