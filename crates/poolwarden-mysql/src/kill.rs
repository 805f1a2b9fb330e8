//! Telling the server to stop a command whose deadline passed, off the
//! caller's path, and counting it.
//!
//! # Implementation Details
//!
//! A timed-out command's connection is discarded by the pool, but the server
//! may still be running (or, if it was frozen, about to start) the command:
//! a frozen server reads the queued query from its socket when it resumes
//! and runs it, and a long query notices a vanished client only when it
//! writes its result (MariaDB's `SLEEP` checks every 5 s). So the manager
//! sends `KILL CONNECTION <id>` over a side connection.
//!
//! `KILL CONNECTION` rather than `KILL QUERY`: the connection is discarded
//! anyway, so ending the session too frees its server thread, its
//! connection slot and its locks at once (an open transaction is rolled
//! back) instead of when the server notices the client left; and a
//! `KILL QUERY` that reaches a resumed server before its thread has read the
//! queued query finds nothing running and is lost, while a killed session
//! never runs it.
//!
//! One worker task per manager at a time, one side connection, the ids in
//! a queue: a burst of timeouts (every borrower of a frozen server) costs
//! one extra connection, not one each. Each id is tried until
//! [`kill_timeout`](crate::MySqlManager::kill_timeout) after its command
//! timed out and then given up (counted): a server frozen longer than that
//! gets no kill (the session then ends when the server notices the closed
//! socket). The caller never waits for any of it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::classify::codes;

/// Name of the counter of commands that passed their deadline (through the
/// `metrics` facade, with the feature `metrics`).
pub const METRIC_COMMAND_TIMEOUTS: &str = "poolwarden_mysql_command_timeouts_total";
/// Name of the counter of kills by outcome, label `outcome`:
/// [`KillOutcome::as_str`].
pub const METRIC_KILLS: &str = "poolwarden_mysql_kills_total";

/// What happened to one kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KillOutcome {
    /// The server ended the session.
    Killed,
    /// The server no longer had the session (it had already ended).
    Gone,
    /// The side connection or the `KILL` failed, or the kill could not be
    /// sent within `kill_timeout`.
    Failed,
}

impl KillOutcome {
    /// The metric label value: `killed`, `gone`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            KillOutcome::Killed => "killed",
            KillOutcome::Gone => "gone",
            KillOutcome::Failed => "failed",
        }
    }
}

/// Counts of command deadlines and kills, since the manager was built
/// ([`MySqlManager::deadline_stats`](crate::MySqlManager::deadline_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadlineStats {
    /// Commands that passed their deadline.
    pub command_timeouts: u64,
    /// Kills the server acknowledged.
    pub kills_killed: u64,
    /// Kills that found the session already gone.
    pub kills_gone: u64,
    /// Kills that failed or were given up.
    pub kills_failed: u64,
    /// Kills queued or in flight.
    pub kills_pending: u64,
}

#[derive(Default)]
struct Counts {
    timeouts: AtomicU64,
    killed: AtomicU64,
    gone: AtomicU64,
    failed: AtomicU64,
}

struct Queue {
    /// Connection ids and the time their kill must be sent by.
    ids: VecDeque<(u32, Instant)>,
    worker_running: bool,
}

/// Sends `KILL CONNECTION` for timed-out commands; shared by the manager and
/// its connections.
pub(crate) struct Killer {
    /// Finds the commands that pass their deadline (`watchdog.rs`); this
    /// killer then stops them on the server.
    watchdog: Arc<crate::watchdog::Watchdog>,
    opts: Opts,
    timeout: Duration,
    counts: Counts,
    queue: Mutex<Queue>,
}

impl Killer {
    pub(crate) fn new(opts: Opts, timeout: Duration) -> Arc<Self> {
        Arc::new(Killer {
            watchdog: crate::watchdog::Watchdog::new(),
            opts,
            timeout,
            counts: Counts::default(),
            queue: Mutex::new(Queue {
                ids: VecDeque::new(),
                worker_running: false,
            }),
        })
    }

    /// The watchdog of this manager's command deadlines.
    pub(crate) fn watchdog(&self) -> &Arc<crate::watchdog::Watchdog> {
        &self.watchdog
    }

    /// A command on connection `id` passed its deadline: count it and queue
    /// the kill. Never blocks, never waits for I/O.
    pub(crate) fn command_timed_out(self: &Arc<Self>, id: u32) {
        self.counts.timeouts.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(METRIC_COMMAND_TIMEOUTS).increment(1);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.record(KillOutcome::Failed);
            return;
        };
        let start_worker = {
            let mut q = self.queue.lock();
            q.ids.push_back((id, Instant::now() + self.timeout));
            !std::mem::replace(&mut q.worker_running, true)
        };
        if start_worker {
            runtime.spawn(Arc::clone(self).work());
        }
    }

    /// How long a kill is tried after its command timed out.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn stats(&self) -> DeadlineStats {
        DeadlineStats {
            command_timeouts: self.counts.timeouts.load(Relaxed),
            kills_killed: self.counts.killed.load(Relaxed),
            kills_gone: self.counts.gone.load(Relaxed),
            kills_failed: self.counts.failed.load(Relaxed),
            kills_pending: self.queue.lock().ids.len() as u64,
        }
    }

    fn record(&self, outcome: KillOutcome) {
        let counter = match outcome {
            KillOutcome::Killed => &self.counts.killed,
            KillOutcome::Gone => &self.counts.gone,
            KillOutcome::Failed => &self.counts.failed,
        };
        counter.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(METRIC_KILLS, "outcome" => outcome.as_str()).increment(1);
    }

    /// The next id to kill, or `None` (and the worker stops) when the queue
    /// is empty.
    fn next(&self) -> Option<(u32, Instant)> {
        let mut q = self.queue.lock();
        let next = q.ids.pop_front();
        if next.is_none() {
            q.worker_running = false;
        }
        next
    }

    /// The worker: drains the queue over one side connection.
    async fn work(self: Arc<Self>) {
        let mut side: Option<Conn> = None;
        while let Some((id, by)) = self.next() {
            let outcome = match tokio::time::timeout_at(by, self.kill(&mut side, id)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    side = None; // mid-command or mid-connect: unusable
                    tracing::warn!(
                        connection_id = id,
                        "KILL CONNECTION not sent within kill_timeout; the server ends the \
                         session when it notices the client left"
                    );
                    KillOutcome::Failed
                }
            };
            self.record(outcome);
        }
        if let Some(conn) = side {
            // Bounded: a server that froze meanwhile does not keep the task.
            let _ = tokio::time::timeout(self.timeout, conn.disconnect()).await;
        }
    }

    async fn kill(&self, side: &mut Option<Conn>, id: u32) -> KillOutcome {
        if side.is_none() {
            match Conn::new(self.opts.clone()).await {
                Ok(conn) => *side = Some(conn),
                Err(e) => {
                    tracing::warn!(connection_id = id, error = %e, "side connection for KILL failed");
                    return KillOutcome::Failed;
                }
            }
        }
        let Some(conn) = side.as_mut() else {
            return KillOutcome::Failed;
        };
        match conn.query_drop(format!("KILL CONNECTION {id}")).await {
            Ok(()) => {
                tracing::debug!(connection_id = id, "killed after its command deadline");
                KillOutcome::Killed
            }
            Err(mysql_async::Error::Server(e)) if e.code == codes::UNKNOWN_THREAD => {
                KillOutcome::Gone
            }
            Err(e) => {
                tracing::warn!(connection_id = id, error = %e, "KILL CONNECTION failed");
                if !matches!(e, mysql_async::Error::Server(_)) {
                    *side = None;
                }
                KillOutcome::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_runtime_the_kill_is_counted_as_failed() {
        let killer = Killer::new(Opts::default(), Duration::from_secs(1));
        killer.command_timed_out(5);
        let s = killer.stats();
        assert_eq!(
            (s.command_timeouts, s.kills_failed, s.kills_pending),
            (1, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_kill_that_cannot_connect_is_counted_and_the_worker_stops() {
        // Nothing listens on port 1 of the loopback address: refused at once.
        let opts = Opts::from_url("mysql://root@127.0.0.1:1/test").unwrap();
        let killer = Killer::new(opts, Duration::from_secs(5));
        killer.command_timed_out(7);
        killer.command_timed_out(8);
        for _ in 0..1000 {
            if killer.stats().kills_failed == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let s = killer.stats();
        assert_eq!(
            (s.command_timeouts, s.kills_failed, s.kills_pending),
            (2, 2, 0),
            "{s:?}"
        );
        assert!(!killer.queue.lock().worker_running, "the worker stopped");
        assert_eq!(KillOutcome::Gone.as_str(), "gone");
    }
}
