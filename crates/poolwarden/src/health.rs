//! Pure decisions about one connection: use it, ping it, reset it, or retire
//! it. No I/O and no locks here, so every rule is a plain function tested
//! with plain numbers.

use std::time::Duration;

use crate::clock::Tick;
use crate::config::PoolConfig;
use crate::manager::Probe;
use crate::status::CloseReason;

/// What the pool knows about one open connection.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Unique in the pool.
    pub(crate) id: u64,
    pub(crate) created: Tick,
    /// `created + max_lifetime - jitter`.
    pub(crate) retire_at: Option<Tick>,
    /// The pool generation when it was opened; older than the pool's
    /// current generation means "opened before a disconnect" (F2).
    pub(crate) generation: u64,
    /// Last moment it was known to work: opened, pinged, or handed out
    /// healthy. The validation bypass window is measured from here.
    pub(crate) last_ok: Tick,
    /// Latest moment it may have done I/O: opened, pinged, or returned.
    /// The server's idle timeout is measured from here.
    pub(crate) last_io: Tick,
    /// When it last became idle, for `idle_timeout`.
    pub(crate) idle_since: Tick,
    /// The server's idle timeout, as reported by the manager.
    pub(crate) server_idle_timeout: Option<Duration>,
    /// Retire idle connections whose `last_io` is older than this: the
    /// server's idle timeout less a safety margin (F1).
    pub(crate) server_limit: Option<Duration>,
    /// Keepalive period for this connection, jittered.
    pub(crate) keepalive: Option<Duration>,
}

impl Meta {
    /// The value of a slot no connection holds.
    pub(crate) fn placeholder() -> Self {
        Meta {
            id: 0,
            created: Tick::default(),
            retire_at: None,
            generation: 0,
            last_ok: Tick::default(),
            last_io: Tick::default(),
            idle_since: Tick::default(),
            server_idle_timeout: None,
            server_limit: None,
            keepalive: None,
        }
    }
}

/// The safety margin under a server idle timeout: a quarter of it, at most
/// 30 s. `wait_timeout = 2 s` retires idle connections after 1.5 s;
/// `28800 s` after 28770 s.
pub fn server_limit(server_idle_timeout: Duration) -> Duration {
    let margin = (server_idle_timeout / 4).min(Duration::from_secs(30));
    server_idle_timeout.saturating_sub(margin)
}

/// The keepalive period for a connection: the configured interval, kept
/// below half the server limit, shortened by up to 10 % at random.
pub(crate) fn keepalive_period(
    cfg: &PoolConfig,
    server_limit: Option<Duration>,
    random: f64,
) -> Option<Duration> {
    let base = cfg.keepalive_interval?;
    let base = match server_limit {
        Some(limit) => base.min(limit / 2),
        None => base,
    };
    Some(scale(base, 1.0 - 0.1 * random.clamp(0.0, 1.0)))
}

/// `d * factor`, saturating at `Duration::MAX` (where `Duration::mul_f64`
/// panics on `Duration::MAX * 1.0` after rounding).
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// When a connection opened at `created` must retire: `max_lifetime` less a
/// random share (`random` in `[0, 1)`) of `lifetime_jitter` (F12).
pub(crate) fn retire_at(cfg: &PoolConfig, created: Tick, random: f64) -> Option<Tick> {
    let life = cfg.max_lifetime?;
    let jitter = scale(life, cfg.lifetime_jitter * random.clamp(0.0, 1.0));
    Some(created.plus(life.saturating_sub(jitter)))
}

/// What to do with an idle connection a checkout just took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtCheckout {
    /// Hand it out as is: it worked within the bypass window.
    Use,
    /// Ping it first (F1, F3).
    Validate,
    /// Close it and take another.
    Retire(CloseReason),
}

/// The checkout rule.
pub(crate) fn at_checkout(meta: &Meta, now: Tick, generation: u64, cfg: &PoolConfig) -> AtCheckout {
    if let Some(reason) = must_retire(meta, now, generation) {
        return AtCheckout::Retire(reason);
    }
    // Strictly inside the window: a zero window validates every checkout,
    // even within one tick of the coarse clock.
    if cfg.skip_validation || now.since(meta.last_ok) < cfg.validation_bypass {
        AtCheckout::Use
    } else {
        AtCheckout::Validate
    }
}

/// Reasons to retire a connection that apply wherever it is.
fn must_retire(meta: &Meta, now: Tick, generation: u64) -> Option<CloseReason> {
    if meta.generation < generation {
        return Some(CloseReason::Stale);
    }
    if meta.retire_at.is_some_and(|at| now >= at) {
        return Some(CloseReason::Lifetime);
    }
    if meta
        .server_limit
        .is_some_and(|limit| now.since(meta.last_io) >= limit)
    {
        return Some(CloseReason::ServerIdleTimeout);
    }
    None
}

/// What to do with a connection coming back from a borrower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtReturn {
    /// Straight back to idle (or to the oldest waiter): no round trip.
    Idle,
    /// Reset it off the caller's path first (F13).
    Reset,
    /// Close it.
    Discard(CloseReason),
}

/// Facts about the return that are not in [`Meta`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Returned {
    pub(crate) probe: Probe,
    /// When it was handed out.
    pub(crate) since: Tick,
    pub(crate) invalidated: bool,
    pub(crate) panicking: bool,
}

/// The return rule. Order matters: a connection that cannot be trusted is
/// never reset (a reset on a dead socket is the origin incident's
/// traceback, F4), and a retired one is never put back.
pub(crate) fn at_return(meta: &Meta, r: Returned, now: Tick, generation: u64) -> AtReturn {
    if r.invalidated {
        return AtReturn::Discard(CloseReason::Invalidated);
    }
    if r.panicking {
        return AtReturn::Discard(CloseReason::Corrupt);
    }
    match r.probe {
        Probe::Closed => return AtReturn::Discard(CloseReason::Closed),
        Probe::Corrupt => return AtReturn::Discard(CloseReason::Corrupt),
        Probe::Clean | Probe::NeedsReset => {}
    }
    if meta.generation < generation {
        return AtReturn::Discard(CloseReason::Stale);
    }
    if meta.retire_at.is_some_and(|at| now >= at) {
        return AtReturn::Discard(CloseReason::Lifetime);
    }
    // Held about as long as the server's idle timeout: if the holder left it
    // idle, the server has closed it (the post-mortem's leak). Close it
    // without a reset, which would only find out the hard way (F4), and
    // without a ping whose failure would look like a server restart and
    // retire every healthy connection (F2 is not F6).
    if meta
        .server_limit
        .is_some_and(|limit| now.since(r.since) >= limit)
    {
        return AtReturn::Discard(CloseReason::ServerIdleTimeout);
    }
    if r.probe == Probe::NeedsReset {
        return AtReturn::Reset;
    }
    AtReturn::Idle
}

/// Whether a `Closed` probe at return means the server went away (and so the
/// pool must be invalidated), rather than the server's idle timeout killing a
/// connection held too long.
pub(crate) fn closed_means_disconnect(meta: &Meta, since: Tick, now: Tick) -> bool {
    meta.server_limit
        .is_none_or(|limit| now.since(since) < limit)
}

/// What the maintenance task does with an idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhileIdle {
    Keep,
    Ping,
    Retire(CloseReason),
}

/// The idle rule. `above_min_idle`: closing it would not take the pool
/// below `min_idle`.
pub(crate) fn while_idle(
    meta: &Meta,
    now: Tick,
    generation: u64,
    cfg: &PoolConfig,
    above_min_idle: bool,
) -> WhileIdle {
    if let Some(reason) = must_retire(meta, now, generation) {
        return WhileIdle::Retire(reason);
    }
    if above_min_idle
        && cfg
            .idle_timeout
            .is_some_and(|t| now.since(meta.idle_since) >= t)
    {
        return WhileIdle::Retire(CloseReason::IdleTimeout);
    }
    if meta
        .keepalive
        .is_some_and(|every| now.since(meta.last_io) >= every)
    {
        return WhileIdle::Ping;
    }
    WhileIdle::Keep
}
