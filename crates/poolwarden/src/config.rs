//! [`PoolConfig`]: the pool's settings as plain, serde-able data.
//!
//! Every field names its default and the failure mode (F-number, see
//! `docs/failure-modes.md`) it defends against. Durations are written in
//! human form in config files (`"30s"`, `"10m"`, `"500ms"`). A timeout of
//! `Duration::MAX` means "no limit" (it is clamped to 30 years inside the
//! pool, never overflows).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which idle connection a checkout takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum IdleOrder {
    /// Newest first (default): keeps a small hot set and lets the rest age
    /// out through `idle_timeout`.
    #[default]
    Lifo,
    /// Oldest first: spreads use over every connection, so every one of them
    /// does I/O and none sits idle long enough for a NAT or proxy to cut it.
    Fifo,
}

/// What checkouts do while the pool has no working connection and connecting
/// keeps failing (server down, F2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Default: while the pool holds no connection and connecting fails, a
    /// waiting checkout fails with the error of the first connect attempt
    /// that started after it began waiting ([`PoolError::Unavailable`](crate::PoolError::Unavailable)),
    /// so it costs about one backoff period (50 ms by default) instead of
    /// its full timeout, and never fails with a stale error once the server
    /// is back. Attempts go on with backoff, at most `max_connecting` per
    /// backoff period, so the pool recovers as soon as the server answers.
    #[default]
    FailFast,
    /// Checkouts wait up to their timeout for the server to come back, while
    /// the pool retries connecting with backoff. The timeout error names the
    /// last connect error. (A server that stops answering with its sockets
    /// open, [`ErrorClass::Unresponsive`](crate::ErrorClass::Unresponsive),
    /// fails checkouts fast under either policy.)
    Wait,
}

/// The pool's settings. Build a pool from it with
/// [`Builder::config`](crate::Builder::config) or set fields through the
/// [`Builder`](crate::Builder); [`Builder::build`](crate::Builder::build)
/// validates them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// A name for logs and metrics. Default `"default"`.
    pub name: String,
    /// Connections kept open. Default 10. Bounds what one process asks of
    /// the server's `max_connections` (F9). Nothing is allocated per
    /// connection until it opens, so a large value costs nothing up front.
    pub max_size: u32,
    /// Extra connections opened under a burst, beyond `max_size`, and closed
    /// when returned while `max_size` connections are already idle. Default
    /// 0. Absorbs bursts without keeping their connections (F7, F9).
    /// `u32::MAX` is SQLAlchemy's unlimited overflow.
    pub max_overflow: u32,
    /// Idle connections kept warm in the background. Default 0.
    pub min_idle: u32,
    /// The longest a checkout may take, whatever the server or manager does.
    /// Default 10 s. A hard contract: a hung connect, ping or server cannot
    /// make `get()` wait longer (F7, F10).
    #[serde(with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// Bound on opening one connection. Default 5 s (F10).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bound on one validation ping. Default 2 s (F3, F10). A ping that
    /// outlives it means the server stopped answering
    /// ([`ErrorClass::Unresponsive`](crate::ErrorClass::Unresponsive)):
    /// waiting checkouts fail fast and every older connection is retired.
    #[serde(with = "humantime_serde")]
    pub validation_timeout: Duration,
    /// Bound on resetting a returned connection. Default 2 s. A reset that
    /// fails or takes longer discards the connection quietly (F4).
    #[serde(with = "humantime_serde")]
    pub reset_timeout: Duration,
    /// A connection used successfully this recently is handed out without a
    /// ping. Default 500 ms (HikariCP's `aliveBypassWindow`). Longer idle
    /// connections are pinged at checkout (F1, F3).
    #[serde(with = "humantime_serde")]
    pub validation_bypass: Duration,
    /// Skip the checkout ping altogether. Default `false`. Leave it off
    /// unless the server never drops connections (F1, F3).
    pub skip_validation: bool,
    /// Retire connections older than this, at return or while idle, never
    /// under a borrower. Default 30 min. `None` keeps them forever (F12).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is shortened by a random amount up to this
    /// fraction of `max_lifetime`, so connections opened together do not all
    /// retire together. Default 0.1 (F12).
    pub lifetime_jitter: f64,
    /// Close connections idle this long (above `min_idle`). Default 10 min.
    /// Always kept below the server's idle timeout when known (F1).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Ping idle connections this often, with up to 10 % jitter, so proxies
    /// and NATs do not cut them. Default 2 min; kept below half the server's
    /// idle timeout when known. `None` disables keepalive (F3).
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Option<Duration>,
    /// Report a checkout held longer than this, with its source location and
    /// label, and again when it comes back; independently, report (louder) a
    /// checkout held for 2/3 of the server's idle timeout, before the server
    /// can close it. Default 30 s. `None` disables both reports; the live
    /// checkout list stays available (F6).
    #[serde(with = "humantime_serde")]
    pub leak_threshold: Option<Duration>,
    /// Capture a backtrace at each checkout for leak reports. Default
    /// `false`: it costs microseconds and an allocation per checkout (F6).
    pub leak_backtrace: bool,
    /// Idle order. Default LIFO.
    pub idle_order: IdleOrder,
    /// At most this many connects in flight at once; one while the pool
    /// holds no connection (the first proves the server takes connections:
    /// first connects started together can refuse each other where a
    /// connection limit counts starting sessions, as PostgreSQL's per-role
    /// limit does). Default 2. Prevents a thundering herd of connects after
    /// a restart (F2, F9).
    pub max_connecting: u32,
    /// First delay between failed connects; doubles up to
    /// `connect_backoff_max`, with jitter. A connection that fails (a failed
    /// or hung ping, a failed reset, a socket found closed, a manager panic)
    /// counts like a failed connect, so a server that accepts connections
    /// but fails every ping is not stormed with connects. Resets after a
    /// proven round trip (a successful ping, a clean return). Default 10 ms
    /// (F2, F9, F11).
    #[serde(with = "humantime_serde")]
    pub connect_backoff_min: Duration,
    /// Ceiling of the connect backoff. Default 50 ms, so a restarted server is
    /// used within about that long of answering; at most `max_connecting`
    /// attempts per interval reach a down server (F2, F9).
    #[serde(with = "humantime_serde")]
    pub connect_backoff_max: Duration,
    /// After a [`Fatal`](crate::ErrorClass::Fatal) connect error (bad
    /// credentials, unknown database), checkouts fail at once with it and
    /// the next connect is tried only after this long. Default 5 s (F11).
    #[serde(with = "humantime_serde")]
    pub fatal_retry_interval: Duration,
    /// What checkouts do while the server is down. Default
    /// [`WhenUnavailable::FailFast`] (F2).
    pub when_unavailable: WhenUnavailable,
    /// How long [`Pool::close`](crate::Pool::close) waits for checked-out
    /// connections (and background resets and pings) to come back. Default
    /// 30 s; `close()` returns by then even if the server is frozen.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// How often the maintenance task runs (leaks, idle reaping, keepalive,
    /// `min_idle` after closes). Default 250 ms. Checkouts refill `min_idle`
    /// at once, and the return path reads the clock itself, so neither waits
    /// for this tick.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            max_size: 10,
            max_overflow: 0,
            min_idle: 0,
            checkout_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            validation_timeout: Duration::from_secs(2),
            reset_timeout: Duration::from_secs(2),
            validation_bypass: Duration::from_millis(500),
            skip_validation: false,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            lifetime_jitter: 0.1,
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            keepalive_interval: Some(Duration::from_secs(2 * 60)),
            leak_threshold: Some(Duration::from_secs(30)),
            leak_backtrace: false,
            idle_order: IdleOrder::Lifo,
            max_connecting: 2,
            connect_backoff_min: Duration::from_millis(10),
            connect_backoff_max: Duration::from_millis(50),
            fatal_retry_interval: Duration::from_secs(5),
            when_unavailable: WhenUnavailable::FailFast,
            close_timeout: Duration::from_secs(30),
            maintenance_interval: Duration::from_millis(250),
        }
    }
}

impl PoolConfig {
    /// The most connections this pool opens at once: `max_size + max_overflow`.
    pub fn max_open(&self) -> u32 {
        self.max_size.saturating_add(self.max_overflow)
    }
}
