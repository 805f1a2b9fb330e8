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
//! The side connection is also how the manager tells "a slow statement on a
//! live server" from "the server stopped answering": if the kill gets no
//! answer (connect and `KILL` round trip) within
//! [`unresponsive_after`](crate::MySqlManager::unresponsive_after), the
//! server answers neither the command nor a fresh connection, and the
//! manager black-holes its pool through its [`ServerSignal`] (once per
//! silent episode: the next answer ends the episode). A kill that is
//! answered, or refused at once (the server is down, not frozen: the pool
//! sees that on its own connects), says nothing of the sort.
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
use poolwarden::ServerSignal;
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
    /// Commands cut because their pool closed or their cluster node was
    /// marked down ([`CommandCut`](crate::CommandCut)).
    pub commands_cut: u64,
    /// Times the manager found that the server stopped answering (a kill
    /// got no answer within `unresponsive_after`) and told its pool.
    pub unresponsive_signals: u64,
}

/// The server answered neither a command (within its deadline) nor the side
/// connection sent to kill it (within
/// [`unresponsive_after`](crate::MySqlManager::unresponsive_after)): it
/// stopped answering while its sockets stay open (frozen, a black-holed
/// route, a hung proxy). The source of the pool's
/// [`PoolError::Unresponsive`](poolwarden::PoolError::Unresponsive) then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the MySQL server stopped answering: a command on connection {connection_id} passed its \
     deadline and a fresh side connection got no answer within {} ms either; check the server \
     and the network path to it",
    waited.as_millis()
)]
#[non_exhaustive]
pub struct ServerNotAnswering {
    /// The connection whose command timed out.
    pub connection_id: u32,
    /// How long the side connection waited.
    pub waited: Duration,
}

#[derive(Default)]
struct Counts {
    timeouts: AtomicU64,
    cuts: AtomicU64,
    signals: AtomicU64,
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
    /// No answer on the side connection within this: the server is silent.
    answer_within: Duration,
    /// Where that verdict goes (the pool's, once attached).
    signal: Mutex<ServerSignal>,
    counts: Counts,
    queue: Mutex<Queue>,
}

impl Killer {
    pub(crate) fn new(opts: Opts, timeout: Duration, answer_within: Duration) -> Arc<Self> {
        Arc::new(Killer {
            watchdog: crate::watchdog::Watchdog::new(),
            opts,
            timeout,
            answer_within,
            signal: Mutex::new(ServerSignal::detached()),
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
        self.queue_kill(id);
    }

    /// A command on connection `id` was cut (`abort.rs`): count it and
    /// queue the kill. Never blocks.
    pub(crate) fn command_cut(self: &Arc<Self>, id: u32) {
        self.counts.cuts.fetch_add(1, Relaxed);
        self.queue_kill(id);
    }

    /// The pool's handle for the "server stopped answering" verdict.
    pub(crate) fn attach(&self, signal: ServerSignal) {
        *self.signal.lock() = signal;
    }

    fn queue_kill(self: &Arc<Self>, id: u32) {
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

    /// The configured `unresponsive_after`.
    pub(crate) fn answer_within(&self) -> Duration {
        self.answer_within
    }

    pub(crate) fn stats(&self) -> DeadlineStats {
        DeadlineStats {
            command_timeouts: self.counts.timeouts.load(Relaxed),
            kills_killed: self.counts.killed.load(Relaxed),
            kills_gone: self.counts.gone.load(Relaxed),
            kills_failed: self.counts.failed.load(Relaxed),
            kills_pending: self.queue.lock().ids.len() as u64,
            commands_cut: self.counts.cuts.load(Relaxed),
            unresponsive_signals: self.counts.signals.load(Relaxed),
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
        // A silent episode was signalled; the next answer ends it.
        let mut signalled = false;
        while let Some((id, by)) = self.next() {
            let result = {
                let attempt = tokio::time::timeout_at(by, self.kill(&mut side, id));
                tokio::pin!(attempt);
                match tokio::time::timeout(self.answer_within, &mut attempt).await {
                    Ok(result) => result,
                    Err(_silent) => {
                        if !signalled {
                            signalled = true;
                            self.server_silent(id);
                        }
                        attempt.await
                    }
                }
            };
            if matches!(result, Ok(KillOutcome::Killed | KillOutcome::Gone)) {
                signalled = false;
            }
            let outcome = match result {
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

    /// The kill for connection `id` got no answer within `answer_within`:
    /// tell the pool the server stopped answering.
    fn server_silent(&self, id: u32) {
        let error = ServerNotAnswering {
            connection_id: id,
            waited: self.answer_within,
        };
        tracing::warn!(%error, "black-holing the pool");
        self.counts.signals.fetch_add(1, Relaxed);
        let signal = self.signal.lock().clone();
        signal.unresponsive(error);
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
        let killer = Killer::new(
            Opts::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
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
        let killer = Killer::new(opts, Duration::from_secs(5), Duration::from_secs(1));
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
