//! What the pool can tell about itself: counts ([`PoolStatus`]), the live
//! checkouts ([`CheckoutInfo`]) and why connections were closed
//! ([`CloseReason`]).

use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Serialize, Serializer};

/// Why the pool closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// Opened before a disconnect was seen or `invalidate_all()` (F2).
    Stale,
    /// Reached `max_lifetime` (F12).
    Lifetime,
    /// Idle longer than `idle_timeout`.
    IdleTimeout,
    /// Idle so long the server has closed or will close it (F1).
    ServerIdleTimeout,
    /// The server or the network closed the socket (F1, F3).
    Closed,
    /// Returned mid-protocol: cancelled command, unread rows, panic (F5).
    Corrupt,
    /// The checkout's holder called `invalidate()` or reported an error that
    /// makes the connection unusable.
    Invalidated,
    /// The reset on return failed or timed out (F4).
    ResetFailed,
    /// The checkout ping failed or timed out (F1, F3).
    ValidationFailed,
    /// An overflow connection returned while enough were idle (F7).
    Overflow,
    /// The pool was closed.
    PoolClosed,
    /// The process forked; the child drops the parent's connections (F8).
    Forked,
}

impl CloseReason {
    /// Every reason, in a stable order.
    pub const ALL: [CloseReason; 12] = [
        CloseReason::Stale,
        CloseReason::Lifetime,
        CloseReason::IdleTimeout,
        CloseReason::ServerIdleTimeout,
        CloseReason::Closed,
        CloseReason::Corrupt,
        CloseReason::Invalidated,
        CloseReason::ResetFailed,
        CloseReason::ValidationFailed,
        CloseReason::Overflow,
        CloseReason::PoolClosed,
        CloseReason::Forked,
    ];

    /// A stable snake_case name, used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Stale => "stale",
            CloseReason::Lifetime => "lifetime",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::ServerIdleTimeout => "server_idle_timeout",
            CloseReason::Closed => "closed",
            CloseReason::Corrupt => "corrupt",
            CloseReason::Invalidated => "invalidated",
            CloseReason::ResetFailed => "reset_failed",
            CloseReason::ValidationFailed => "validation_failed",
            CloseReason::Overflow => "overflow",
            CloseReason::PoolClosed => "pool_closed",
            CloseReason::Forked => "forked",
        }
    }

    /// Whether the connection failed (as opposed to being retired by
    /// policy): such closes feed the connect backoff.
    pub(crate) fn is_failure(self) -> bool {
        matches!(
            self,
            CloseReason::Closed | CloseReason::ResetFailed | CloseReason::ValidationFailed
        )
    }

    fn index(self) -> usize {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// Connections closed so far, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClosedCounts {
    /// See [`CloseReason::Stale`].
    pub stale: u64,
    /// See [`CloseReason::Lifetime`].
    pub lifetime: u64,
    /// See [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// See [`CloseReason::ServerIdleTimeout`].
    pub server_idle_timeout: u64,
    /// See [`CloseReason::Closed`].
    pub closed: u64,
    /// See [`CloseReason::Corrupt`].
    pub corrupt: u64,
    /// See [`CloseReason::Invalidated`].
    pub invalidated: u64,
    /// See [`CloseReason::ResetFailed`].
    pub reset_failed: u64,
    /// See [`CloseReason::ValidationFailed`].
    pub validation_failed: u64,
    /// See [`CloseReason::Overflow`].
    pub overflow: u64,
    /// See [`CloseReason::PoolClosed`].
    pub pool_closed: u64,
    /// See [`CloseReason::Forked`].
    pub forked: u64,
}

impl ClosedCounts {
    /// The count for one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::Stale => self.stale,
            CloseReason::Lifetime => self.lifetime,
            CloseReason::IdleTimeout => self.idle_timeout,
            CloseReason::ServerIdleTimeout => self.server_idle_timeout,
            CloseReason::Closed => self.closed,
            CloseReason::Corrupt => self.corrupt,
            CloseReason::Invalidated => self.invalidated,
            CloseReason::ResetFailed => self.reset_failed,
            CloseReason::ValidationFailed => self.validation_failed,
            CloseReason::Overflow => self.overflow,
            CloseReason::PoolClosed => self.pool_closed,
            CloseReason::Forked => self.forked,
        }
    }

    /// All closes.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// A snapshot of the pool's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Configured `max_size`.
    pub max_size: u32,
    /// `max_size + max_overflow`.
    pub max_open: u32,
    /// Open connections: `idle + in_use + background`.
    pub open: u32,
    /// Idle connections.
    pub idle: u32,
    /// Checked-out connections: with a borrower, nothing else.
    pub in_use: u32,
    /// Connections the pool is working on off any borrower's hands: a
    /// checkout's validation ping, a reset after return, a keepalive ping.
    pub background: u32,
    /// Open connections beyond `max_size`.
    pub overflow: u32,
    /// Checkouts waiting for a connection.
    pub waiting: u32,
    /// Connects in flight.
    pub connecting: u32,
    /// The invalidation generation: bumped by every pool-wide invalidation.
    pub generation: u64,
    /// Connections opened so far.
    pub created: u64,
    /// Connections closed so far, by reason.
    pub closed: ClosedCounts,
    /// Successful checkouts so far.
    pub checkouts: u64,
    /// Checkouts that timed out.
    pub timeouts: u64,
    /// Pool-wide invalidations (disconnects seen and `invalidate_all()`).
    pub invalidations: u64,
    /// Failed connect attempts.
    pub connect_failures: u64,
    /// Checkouts reported as leaks (held past `leak_threshold`).
    pub leaks: u64,
    /// Resets run on return.
    pub resets: u64,
    /// Validation pings run at checkout or by keepalive.
    pub validations: u64,
    /// Manager methods that panicked (each caught, its connection closed).
    pub manager_panics: u64,
}

/// One live checkout: who holds which connection, since when (F6).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CheckoutInfo {
    /// The checkout's id (unique in this pool).
    pub id: u64,
    /// The connection's id (unique in this pool).
    pub connection_id: u64,
    /// Where `get()` was called.
    #[serde(serialize_with = "ser_location")]
    pub location: &'static Location<'static>,
    /// The label set with [`PooledConnection::label`](crate::PooledConnection::label).
    pub label: Option<Cow<'static, str>>,
    /// How long it has been held.
    #[serde(serialize_with = "ser_secs")]
    pub held_for: Duration,
    /// How old the connection is.
    #[serde(serialize_with = "ser_secs")]
    pub connection_age: Duration,
    /// The server's idle timeout for this connection, when known.
    #[serde(serialize_with = "ser_opt_secs")]
    pub server_idle_timeout: Option<Duration>,
    /// Whether it has been reported as a leak.
    pub leak_reported: bool,
}

fn ser_location<S: Serializer>(l: &&'static Location<'static>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(l)
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Cumulative counters, updated without the state lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    pub(crate) timeouts: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) validations: AtomicU64,
    pub(crate) manager_panics: AtomicU64,
}

impl Counters {
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn fill(&self, s: &mut PoolStatus) {
        let c = |i: usize| self.closed[i].load(Relaxed);
        s.created = self.created.load(Relaxed);
        s.closed = ClosedCounts {
            stale: c(0),
            lifetime: c(1),
            idle_timeout: c(2),
            server_idle_timeout: c(3),
            closed: c(4),
            corrupt: c(5),
            invalidated: c(6),
            reset_failed: c(7),
            validation_failed: c(8),
            overflow: c(9),
            pool_closed: c(10),
            forked: c(11),
        };
        s.timeouts = self.timeouts.load(Relaxed);
        s.invalidations = self.invalidations.load(Relaxed);
        s.connect_failures = self.connect_failures.load(Relaxed);
        s.leaks = self.leaks.load(Relaxed);
        s.resets = self.resets.load(Relaxed);
        s.validations = self.validations.load(Relaxed);
        s.manager_panics = self.manager_panics.load(Relaxed);
    }
}
