//! [`Error`]: what the manager and [`PgConn`](crate::PgConn) return.

use std::time::Duration;

/// An error from a pooled PostgreSQL connection or from opening one.
///
/// A `?` turns a [`tokio_postgres::Error`] into [`Error::Postgres`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The driver's error: a server error (see
    /// [`tokio_postgres::Error::as_db_error`] and `code()`), a closed
    /// connection, a conversion error.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// Opening a connection failed. `target` names the server and user
    /// (never the password).
    #[error("could not connect to PostgreSQL at {target}")]
    Connect {
        /// `user@host:port/database`.
        target: String,
        /// What the driver said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A command did not finish before its deadline (the checkout's
    /// deadline or the manager's `command_timeout`). It was cut off and is
    /// cancelled on the server before the connection is used again.
    #[error(
        "the PostgreSQL command did not finish within its deadline ({waited:?}); it was cancelled"
    )]
    Deadline {
        /// How long the command ran before it was cut off.
        waited: Duration,
    },
    /// The command was cut because [`Pool::close`](poolwarden::Pool::close)
    /// reached its `close_timeout` with this connection still checked out
    /// (or it was called after that and not sent). It is cancelled on the
    /// server; the connection is closed when it goes back to the pool.
    #[error(
        "the PostgreSQL command was cut: the pool was closed and close_timeout passed with this \
         connection still checked out"
    )]
    PoolClosed {
        /// Whether the command had been sent.
        sent: bool,
    },
}

impl Error {
    /// The server's SQLSTATE, if this is a server error.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Error::Postgres(e) | Error::Connect { source: e, .. } => e.code(),
            Error::Deadline { .. } | Error::PoolClosed { .. } => None,
        }
    }

    /// The driver's error, if there is one.
    pub fn as_postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Postgres(e) | Error::Connect { source: e, .. } => Some(e),
            Error::Deadline { .. } | Error::PoolClosed { .. } => None,
        }
    }
}
