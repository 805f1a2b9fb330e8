//! The pool's clock: cheap enough for the hot path, and the paused tokio
//! clock in unit tests.
//!
//! A checkout and its return each read this clock once (a checkout that
//! waits or pings reads it again after). `std::time::Instant`
//! costs about 30 ns here; the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`,
//! a few ms of resolution, read from the vDSO through rustix) costs about
//! 10 ns, and every decision the pool takes
//! from time (bypass window, leaks, idle and lifetime limits) is measured in
//! hundreds of milliseconds or more.

use std::time::Duration;

/// A point on the pool's monotonic clock, in nanoseconds from an arbitrary
/// origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tick(u64);

impl Tick {
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn since(self, earlier: Tick) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating.
    pub(crate) fn plus(self, d: Duration) -> Tick {
        Tick(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// The tokio instant for this tick, to sleep until it.
    pub(crate) fn to_tokio(self) -> tokio::time::Instant {
        let now = now();
        let base = tokio::time::Instant::now();
        if self >= now {
            deadline_after(base, self.since(now))
        } else {
            base.checked_sub(now.since(self)).unwrap_or(base)
        }
    }
}

/// The longest wait the pool schedules: a `Duration::MAX` setting ("no
/// limit") is clamped to this instead of overflowing `Instant + Duration`
/// (defect 2). Thirty years, as tokio's own `sleep(Duration::MAX)`.
pub(crate) const NO_LIMIT: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `start + d`, with any `d` beyond [`NO_LIMIT`] meaning "no limit".
pub(crate) fn deadline_after(start: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    start + d.min(NO_LIMIT)
}

/// The current tick.
#[cfg(all(any(target_os = "linux", target_os = "android"), not(test)))]
#[inline]
pub(crate) fn now() -> Tick {
    // Infallible and read from the vDSO without a system call; rustix's
    // call inlines, where a libc wrapper cost as much again as the read.
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Tick((ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64)
}

#[cfg(all(not(any(target_os = "linux", target_os = "android")), not(test)))]
pub(crate) fn now() -> Tick {
    fallback()
}

#[cfg(all(not(any(target_os = "linux", target_os = "android")), not(test)))]
fn fallback() -> Tick {
    use std::sync::OnceLock;
    use std::time::Instant;
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    Tick(u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// The current tick: unit tests follow tokio's (possibly paused) clock.
#[cfg(test)]
pub(crate) fn now() -> Tick {
    use std::sync::OnceLock;
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(|| std::time::Instant::now() - Duration::from_secs(3600));
    let now = tokio::time::Instant::now().into_std();
    Tick(u64::try_from(now.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX))
}
