//! [`PoolError`] (what a checkout can fail with) and [`BuildError`] (what a
//! configuration can be rejected for).
//!
//! `Display` says what happened and what to do; the driver's error, when
//! there is one, is the [`source`](std::error::Error::source), never repeated
//! in the message.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::status::{CheckoutInfo, PoolStatus};

/// A driver error shared by every checkout it failed.
pub type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a checkout failed.
///
/// For `Unavailable`, `Fatal` and `Unresponsive`, [`source`](StdError::source) is the
/// driver's own error, so `err.source()?.downcast_ref::<DriverError>()`
/// works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PoolError {
    /// No healthy connection could be handed out within the checkout timeout
    /// (F7, F10). The message names the pool's state and its longest holders.
    Timeout(Box<TimeoutError>),
    /// The server is not answering: the pool holds no connection and a
    /// connect attempt made for this checkout failed (F2). Check that the
    /// server is up and reachable; the pool keeps retrying with backoff.
    Unavailable {
        /// The connect error.
        source: SharedError,
    },
    /// Connecting failed in a way retrying cannot fix: wrong credentials,
    /// unknown database, bad TLS settings (F11). Fix the configuration.
    Fatal {
        /// The connect error.
        source: SharedError,
    },
    /// The server stopped answering while its sockets stayed open (a frozen
    /// server, a black-holed route; see
    /// [`ErrorClass::Unresponsive`](crate::ErrorClass::Unresponsive)).
    /// Checkouts waiting when it is seen fail at once with it; later ones
    /// wait up to `validation_timeout` for a round trip of their own (a
    /// connect) and fail with it if none succeeds; the pool
    /// keeps trying to connect with backoff. Check the server and the
    /// network path to it.
    Unresponsive {
        /// The error that showed it: a ping that outlived
        /// `validation_timeout` ([`CallTimeout`]) or the manager's own.
        source: SharedError,
    },
    /// [`try_get`](crate::Pool::try_get) found no idle connection.
    Busy,
    /// The pool was closed with [`Pool::close`](crate::Pool::close).
    Closed,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout(t) => t.fmt(f),
            PoolError::Unavailable { .. } => f.write_str(
                "database unavailable: the pool has no connection and connecting failed; check that the server is running and reachable (the pool keeps retrying)",
            ),
            PoolError::Fatal { .. } => f.write_str(
                "cannot connect to the database: the server rejected the connection settings (credentials, database name or TLS); fix the configuration",
            ),
            PoolError::Unresponsive { .. } => f.write_str(
                "database not answering: a connection's socket is open but the server did not reply in time; waiting checkouts fail at once and new ones need a fresh connection (check the server and the network path)",
            ),
            PoolError::Busy => f.write_str("no idle connection available right now"),
            PoolError::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PoolError::Timeout(t) => t.source(),
            PoolError::Unavailable { source }
            | PoolError::Fatal { source }
            | PoolError::Unresponsive { source } => Some(&**source as &(dyn StdError + 'static)),
            PoolError::Busy | PoolError::Closed => None,
        }
    }
}

impl PoolError {
    /// The timeout details, if this is a timeout.
    pub fn as_timeout(&self) -> Option<&TimeoutError> {
        match self {
            PoolError::Timeout(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this error is a checkout timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout(_))
    }
}

/// The details of a checkout timeout: enough to find the culprit from the
/// message alone (F7).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TimeoutError {
    /// How long the checkout waited.
    pub waited: Duration,
    /// The pool's counts when the checkout gave up.
    pub status: PoolStatus,
    /// The longest-held checkouts, longest first (at most three).
    pub holders: Vec<CheckoutInfo>,
    /// The last connect error, if connecting was failing.
    pub last_connect_error: Option<SharedError>,
    /// The pool's name.
    pub pool: String,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.status;
        write!(
            f,
            "pool {:?}: checkout timed out after {:.3}s: {}/{} connections in use, {} idle, {} waiting, {} connecting",
            self.pool,
            self.waited.as_secs_f64(),
            s.in_use,
            s.max_open,
            s.idle,
            s.waiting,
            s.connecting,
        )?;
        for (i, h) in self.holders.iter().enumerate() {
            f.write_str(if i == 0 { "; longest held: " } else { ", " })?;
            write!(f, "{:.1}s at {}", h.held_for.as_secs_f64(), h.location)?;
            if let Some(label) = &h.label {
                write!(f, " ({label})")?;
            }
        }
        if self.last_connect_error.is_some() {
            f.write_str("; connecting failed (see the source error)")?;
        }
        Ok(())
    }
}

impl StdError for TimeoutError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.last_connect_error
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A manager call that outlived its bound (`validation_timeout`,
/// `reset_timeout`): the source of a [`PoolError::Unresponsive`] when a
/// validation ping timed out.
#[derive(Debug, thiserror::Error)]
#[error("{call} did not answer within {after:?}")]
pub struct CallTimeout {
    /// Which call.
    pub call: crate::observe::ManagerCall,
    /// Its bound.
    pub after: Duration,
}

/// A manager method panicked. The pool caught it, discarded the connection
/// it was working on (if any), counted it (`PoolStatus::manager_panics`)
/// and backs off as after an error.
#[derive(Debug, thiserror::Error)]
#[error("the manager panicked in {call}: {message}")]
pub struct ManagerPanic {
    /// Which call.
    pub call: crate::observe::ManagerCall,
    /// The panic's message, when it was a string.
    pub message: String,
}

/// An error a borrower reported ([`PooledConnection::report_error`](crate::PooledConnection::report_error))
/// that black-holed the pool, as text (the driver's error stays with the
/// borrower).
#[derive(Debug, thiserror::Error)]
#[error("a borrower's command got no answer in time: {0}")]
pub(crate) struct Reported(pub(crate) String);

/// A configuration [`Builder::build`](crate::Builder::build) refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_size` must be at least 1.
    #[error("max_size is 0: a pool needs at least one connection; set max_size to 1 or more")]
    ZeroSize,
    /// `min_idle` cannot exceed `max_size`.
    #[error(
        "min_idle ({min_idle}) is above max_size ({max_size}); lower min_idle or raise max_size"
    )]
    MinIdleAboveMax {
        /// The configured `min_idle`.
        min_idle: u32,
        /// The configured `max_size`.
        max_size: u32,
    },
    /// A timeout that must be positive is zero.
    #[error("{field} is zero; it must be a positive duration")]
    ZeroDuration {
        /// The setting's name.
        field: &'static str,
    },
    /// Two settings contradict each other.
    #[error("{field} ({value:?}) must be longer than {other} ({other_value:?})")]
    TooShort {
        /// The setting that is too short.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The setting it must exceed.
        other: &'static str,
        /// That setting's value.
        other_value: Duration,
    },
    /// `lifetime_jitter` is not a fraction in `[0, 0.5]`.
    #[error("lifetime_jitter is {0}; it must be a fraction between 0 and 0.5")]
    BadJitter(f64),
    /// `max_connecting` must be at least 1.
    #[error("max_connecting is 0: the pool could never open a connection; set it to 1 or more")]
    ZeroConnecting,
}
