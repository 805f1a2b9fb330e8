//! Observing the pool: the [`Observer`] hook, `tracing` events, and metrics
//! through the `metrics` facade (feature `metrics`).
//!
//! # Metric names (stable)
//! Every metric carries the label `pool` (the pool's `name`).
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `poolwarden_connections` | gauge | open connections |
//! | `poolwarden_connections_idle` | gauge | idle connections |
//! | `poolwarden_connections_in_use` | gauge | checked-out connections |
//! | `poolwarden_waiting` | gauge | checkouts waiting |
//! | `poolwarden_checkout_wait_seconds` | histogram | time `get()` took |
//! | `poolwarden_checkout_hold_seconds` | histogram | time a checkout was held |
//! | `poolwarden_connect_seconds` | histogram | time to open a connection |
//! | `poolwarden_reset_seconds` | histogram | time to reset a returned connection |
//! | `poolwarden_connections_created_total` | counter | connections opened |
//! | `poolwarden_connections_closed_total` | counter | connections closed, label `reason` ([`CloseReason::as_str`](crate::CloseReason::as_str)) |
//! | `poolwarden_checkout_timeouts_total` | counter | checkouts that timed out |
//! | `poolwarden_connect_errors_total` | counter | failed connects |
//! | `poolwarden_leaks_total` | counter | checkouts reported as leaks |
//! | `poolwarden_invalidations_total` | counter | pool-wide invalidations |
//!
//! Gauges are refreshed by the maintenance task (every
//! `maintenance_interval`) and on checkout timeouts.

use std::error::Error as StdError;
use std::panic::Location;
use std::time::Duration;

use crate::manager::ErrorClass;
#[cfg(feature = "metrics")]
use crate::status::PoolStatus;
use crate::status::{CheckoutInfo, CloseReason};

/// Why the pool retired every older connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidationCause {
    /// A disconnect-class error was seen on a connection.
    Disconnect,
    /// [`Pool::invalidate_all`](crate::Pool::invalidate_all) was called.
    Requested,
    /// The process forked (F8).
    Forked,
    /// The server stopped answering while its sockets stayed open
    /// ([`ErrorClass::Unresponsive`]).
    Unresponsive,
}

/// A [`Manager`](crate::Manager) method the pool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagerCall {
    /// [`connect`](crate::Manager::connect) (and `facts` right after it).
    Connect,
    /// [`validate`](crate::Manager::validate) at checkout.
    Validate,
    /// [`validate`](crate::Manager::validate) by the keepalive of an idle
    /// connection.
    Keepalive,
    /// [`reset`](crate::Manager::reset) after a return.
    Reset,
    /// [`probe`](crate::Manager::probe) or
    /// [`probe_returned`](crate::Manager::probe_returned).
    Probe,
    /// [`classify`](crate::Manager::classify).
    Classify,
    /// [`on_hand_out`](crate::Manager::on_hand_out).
    HandOut,
    /// [`cut_in_flight`](crate::Manager::cut_in_flight), at `close_timeout`.
    CutInFlight,
}

impl ManagerCall {
    /// A stable snake_case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagerCall::Connect => "connect",
            ManagerCall::Validate => "validate",
            ManagerCall::Keepalive => "keepalive",
            ManagerCall::Reset => "reset",
            ManagerCall::Probe => "probe",
            ManagerCall::Classify => "classify",
            ManagerCall::HandOut => "on_hand_out",
            ManagerCall::CutInFlight => "cut_in_flight",
        }
    }
}

impl std::fmt::Display for ManagerCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened in the pool, handed to an [`Observer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A connection was opened.
    Connected {
        /// The connection's id.
        connection_id: u64,
        /// How long connecting took.
        took: Duration,
    },
    /// A connect attempt failed.
    ConnectFailed {
        /// The error.
        error: &'a (dyn StdError + Send + Sync + 'static),
        /// Its class.
        class: ErrorClass,
        /// Failures in a row so far.
        consecutive: u32,
    },
    /// A manager call on an open connection failed, timed out or panicked
    /// (a failed connect is [`Event::ConnectFailed`]). Also logged at
    /// `warn`. The connection was closed.
    CallFailed {
        /// Which call.
        call: ManagerCall,
        /// The connection's id.
        connection_id: u64,
        /// The error: the driver's, a [`CallTimeout`](crate::CallTimeout)
        /// or a [`ManagerPanic`](crate::ManagerPanic).
        error: &'a (dyn StdError + Send + Sync + 'static),
        /// How the pool treated it.
        class: ErrorClass,
    },
    /// A connection was handed out.
    CheckedOut {
        /// The checkout's id.
        checkout_id: u64,
        /// The connection's id.
        connection_id: u64,
        /// Where `get()` was called.
        location: &'static Location<'static>,
    },
    /// A connection came back.
    CheckedIn {
        /// The checkout's id.
        checkout_id: u64,
        /// The connection's id.
        connection_id: u64,
        /// How long it was held.
        held_for: Duration,
    },
    /// A connection was closed.
    Discarded {
        /// The connection's id.
        connection_id: u64,
        /// Why.
        reason: CloseReason,
    },
    /// A checkout has been held past `leak_threshold` (F6).
    Leak {
        /// The checkout.
        checkout: &'a CheckoutInfo,
    },
    /// A checkout has been held so long the server may close its connection
    /// (its idle timeout is near) (F6).
    NearServerTimeout {
        /// The checkout.
        checkout: &'a CheckoutInfo,
    },
    /// A checkout reported as a leak came back.
    LeakResolved {
        /// The checkout.
        checkout: &'a CheckoutInfo,
    },
    /// Every connection opened before now will be retired (F2, F8).
    Invalidated {
        /// The new generation.
        generation: u64,
        /// Why.
        cause: InvalidationCause,
    },
}

/// A hook that sees every [`Event`]. Called synchronously on the path where
/// the event happens (checkout events on the caller's task), so it must be
/// quick and must not block.
pub trait Observer: Send + Sync + 'static {
    /// Called for each event.
    fn on_event(&self, event: &Event<'_>);
}

/// Metric handles, registered once per pool.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct Metrics {
    open: metrics::Gauge,
    idle: metrics::Gauge,
    in_use: metrics::Gauge,
    waiting: metrics::Gauge,
    pub(crate) wait: metrics::Histogram,
    pub(crate) hold: metrics::Histogram,
    pub(crate) connect: metrics::Histogram,
    pub(crate) reset: metrics::Histogram,
    pub(crate) created: metrics::Counter,
    closed: Vec<metrics::Counter>,
    pub(crate) timeouts: metrics::Counter,
    pub(crate) connect_errors: metrics::Counter,
    pub(crate) leaks: metrics::Counter,
    pub(crate) invalidations: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl Metrics {
    pub(crate) fn new(pool: &str) -> Self {
        let l = pool.to_owned();
        Metrics {
            open: metrics::gauge!("poolwarden_connections", "pool" => l.clone()),
            idle: metrics::gauge!("poolwarden_connections_idle", "pool" => l.clone()),
            in_use: metrics::gauge!("poolwarden_connections_in_use", "pool" => l.clone()),
            waiting: metrics::gauge!("poolwarden_waiting", "pool" => l.clone()),
            wait: metrics::histogram!("poolwarden_checkout_wait_seconds", "pool" => l.clone()),
            hold: metrics::histogram!("poolwarden_checkout_hold_seconds", "pool" => l.clone()),
            connect: metrics::histogram!("poolwarden_connect_seconds", "pool" => l.clone()),
            reset: metrics::histogram!("poolwarden_reset_seconds", "pool" => l.clone()),
            created: metrics::counter!("poolwarden_connections_created_total", "pool" => l.clone()),
            closed: CloseReason::ALL
                .iter()
                .map(|r| {
                    metrics::counter!("poolwarden_connections_closed_total", "pool" => l.clone(), "reason" => r.as_str())
                })
                .collect(),
            timeouts: metrics::counter!("poolwarden_checkout_timeouts_total", "pool" => l.clone()),
            connect_errors: metrics::counter!("poolwarden_connect_errors_total", "pool" => l.clone()),
            leaks: metrics::counter!("poolwarden_leaks_total", "pool" => l.clone()),
            invalidations: metrics::counter!("poolwarden_invalidations_total", "pool" => l),
        }
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        if let Some(i) = CloseReason::ALL.iter().position(|r| *r == reason) {
            self.closed[i].increment(1);
        }
    }

    pub(crate) fn gauges(&self, s: &PoolStatus) {
        self.open.set(f64::from(s.open));
        self.idle.set(f64::from(s.idle));
        self.in_use.set(f64::from(s.in_use));
        self.waiting.set(f64::from(s.waiting));
    }
}
