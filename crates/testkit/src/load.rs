//! A bounded load generator for the fault suites: tasks that check out,
//! run one operation, and return, recording what each operation did and
//! when; plus helpers to describe failures and pool errors.
//!
//! Shared by the fault suites of every manager crate; each says what one
//! operation is with an [`Operation`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwarden::{Manager, Pool, PoolError, PooledConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What the load does with each connection it checks out.
pub trait Operation<M: Manager>: Send + Sync + 'static {
    /// Run one query on `conn`; `Err` describes a failed query or a wrong
    /// result.
    fn run(
        &self,
        conn: &mut PooledConnection<M>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one checkout-and-query of the load did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Checked out, the operation succeeded.
    Ok,
    /// `get()` failed.
    Get(PoolError),
    /// The query on a handed-out connection failed or returned a wrong row.
    Query(String),
}

/// One operation of the load: `get()`, `SELECT 42`, drop.
#[derive(Debug, Clone)]
pub struct Op {
    /// The load task that ran it.
    pub task: usize,
    /// Before `get()` was called.
    pub start: Instant,
    /// When `get()` returned a connection.
    pub handed_out: Option<Instant>,
    /// When it ended (the connection returned, or `get()` failed).
    pub end: Instant,
    /// The pool's id of the connection used.
    pub conn: Option<u64>,
    /// What happened.
    pub outcome: Outcome,
}

impl Op {
    /// It succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok)
    }
}

/// Counts of the load so far, and a signal on every change.
#[derive(Default)]
pub struct Progress {
    /// Operations that succeeded.
    pub ok: AtomicU64,
    /// Operations that failed.
    pub err: AtomicU64,
    notify: Notify,
}

impl Progress {
    /// Wait until at least `n` operations succeeded in all.
    pub async fn wait_ok(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ok.load(SeqCst) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// A running load: `tasks` tasks each doing at most `ops_per_task`
/// operations, for at most `max_time`, or until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Counts so far.
    pub progress: Arc<Progress>,
    handles: Vec<JoinHandle<Vec<Op>>>,
}

/// Pause after a failed operation, as a client would (not synchronisation:
/// it only keeps 32 failing tasks from spinning on 2 cores).
const ERROR_PACING: Duration = Duration::from_millis(10);

impl Load {
    /// Start `tasks` tasks, each doing at most `ops_per_task` times: check
    /// out, run `op` on the connection, return it; for at most `max_time`.
    pub fn start<M: Manager, O: Operation<M>>(
        pool: &Pool<M>,
        op: O,
        tasks: usize,
        ops_per_task: usize,
        max_time: Duration,
    ) -> Load {
        let op = Arc::new(op);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let deadline = Instant::now() + max_time;
        let handles = (0..tasks)
            .map(|task| {
                let pool = pool.clone();
                let op = Arc::clone(&op);
                let stop = Arc::clone(&stop);
                let progress = Arc::clone(&progress);
                tokio::spawn(async move {
                    let mut ops = Vec::new();
                    for _ in 0..ops_per_task {
                        if stop.load(SeqCst) || Instant::now() >= deadline {
                            break;
                        }
                        let op = one_op(&pool, &*op, task).await;
                        let ok = op.is_ok();
                        ops.push(op);
                        if ok {
                            progress.ok.fetch_add(1, SeqCst);
                        } else {
                            progress.err.fetch_add(1, SeqCst);
                        }
                        progress.notify.notify_waiters();
                        if !ok {
                            tokio::time::sleep(ERROR_PACING).await;
                        }
                    }
                    ops
                })
            })
            .collect();
        Load {
            stop,
            progress,
            handles,
        }
    }

    /// Stop and collect every operation.
    pub async fn finish(self) -> Vec<Op> {
        self.stop.store(true, SeqCst);
        let mut all = Vec::new();
        for h in self.handles {
            all.extend(h.await.expect("load task panicked"));
        }
        all.sort_by_key(|op| op.start);
        all
    }

    /// Wait until every task has done its operations (or hit the time limit).
    pub async fn join(self) -> Vec<Op> {
        let mut all = Vec::new();
        for h in self.handles {
            all.extend(h.await.expect("load task panicked"));
        }
        all.sort_by_key(|op| op.start);
        all
    }
}

async fn one_op<M: Manager, O: Operation<M>>(pool: &Pool<M>, op: &O, task: usize) -> Op {
    let start = Instant::now();
    match pool.get().await {
        Err(e) => Op {
            task,
            start,
            handed_out: None,
            end: Instant::now(),
            conn: None,
            outcome: Outcome::Get(e),
        },
        Ok(mut c) => {
            let handed_out = Instant::now();
            let conn = c.connection_id();
            let outcome = match op.run(&mut c).await {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Query(e),
            };
            drop(c);
            Op {
                task,
                start,
                handed_out: Some(handed_out),
                end: Instant::now(),
                conn: Some(conn),
                outcome,
            }
        }
    }
}

/// A short description of failed operations, for assertion messages.
pub fn describe_failures(ops: &[Op], origin: Instant, limit: usize) -> String {
    let failed: Vec<_> = ops.iter().filter(|op| !op.is_ok()).collect();
    let mut out = format!("{} failed operations", failed.len());
    for op in failed.iter().take(limit) {
        let what = match &op.outcome {
            Outcome::Ok => unreachable!(),
            Outcome::Get(e) => format!("get: {}", error_chain(e)),
            Outcome::Query(e) => format!("query on connection {:?}: {e}", op.conn),
        };
        out.push_str(&format!(
            "\n  task {} start {:+} ms, handed out {}, end {:+} ms: {what}",
            op.task,
            ms(origin, op.start),
            op.handed_out
                .map_or("-".to_owned(), |h| format!("{:+} ms", ms(origin, h))),
            ms(origin, op.end),
        ));
    }
    out
}

/// A pool error with its sources (a timeout's last connect error included).
pub fn error_chain(e: &PoolError) -> String {
    let mut out = e.to_string();
    let mut source = match e.as_timeout() {
        Some(t) => std::error::Error::source(t),
        None => std::error::Error::source(e),
    };
    while let Some(s) = source {
        out.push_str(" <- ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Milliseconds from `origin` to `t` (negative when earlier), for reports.
pub fn ms(origin: Instant, t: Instant) -> i128 {
    if t >= origin {
        t.duration_since(origin).as_millis() as i128
    } else {
        -(origin.duration_since(t).as_millis() as i128)
    }
}
