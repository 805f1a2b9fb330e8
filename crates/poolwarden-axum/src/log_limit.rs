//! Rate-limited, aggregated error logging: during an outage every request
//! fails the same way, and one log line per failure drowns the one line an
//! operator needs. [`LogLimiter`] lets one event per cause through per
//! interval and counts the rest; the next line that gets through says how
//! many were held back.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// One log line per cause per interval, with a count of the others.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    causes: Mutex<BTreeMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    suppressed: u64,
}

/// The pool's checkout errors (and what else the app sends through
/// [`LogLimiter::global`]) are limited to one line per cause per this.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

impl LogLimiter {
    /// A limiter letting one event per cause through per `interval`.
    pub const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            causes: parking_lot::const_mutex(BTreeMap::new()),
        }
    }

    /// The process-wide limiter (interval [`LOG_INTERVAL`]) that
    /// [`DbRejection`](crate::DbRejection) logs through.
    pub fn global() -> &'static LogLimiter {
        static GLOBAL: LogLimiter = LogLimiter::new(LOG_INTERVAL);
        &GLOBAL
    }

    /// Whether an event of `cause` should be logged now: `Some(n)` with the
    /// number of events of that cause held back since the last one logged,
    /// `None` to drop this one (it is counted).
    pub fn admit(&self, cause: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut causes = self.causes.lock();
        match causes.get_mut(cause) {
            Some(w) if now.duration_since(w.started) < self.interval => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let held_back = std::mem::take(&mut w.suppressed);
                w.started = now;
                Some(held_back)
            }
            None => {
                causes.insert(
                    cause,
                    Window {
                        started: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_cause_per_interval_with_a_count() {
        let l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.admit("timeout"), Some(0));
        for _ in 0..500 {
            assert_eq!(l.admit("timeout"), None);
        }
        assert_eq!(l.admit("refused"), Some(0), "causes are counted apart");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.admit("timeout"), Some(500));
        assert_eq!(l.admit("timeout"), None);
    }
}
