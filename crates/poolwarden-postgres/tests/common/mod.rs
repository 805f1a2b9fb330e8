//! Shared helpers for the Postgres fault suite (`tests/faults_*.rs`):
//! private PostgreSQL servers, pools, an observer that records the pool's
//! events with their time, and a bounded load generator. (Adapted from
//! poolwarden-mysql's `tests/common`.)

#![allow(dead_code)] // each test file uses its own subset

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden::{Builder, Observer, Pool, PoolError, PooledConnection};
use poolwarden_postgres::PgManager;
#[allow(unused_imports)] // each test file uses its own subset
pub(crate) use poolwarden_testkit::pool_events::{poll_until, Events, Kind, Rec};
use poolwarden_testkit::Postgres;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub(crate) type PgPool = Pool<PgManager>;
pub(crate) type Guard = PooledConnection<PgManager>;

/// Logs go to the test output when `RUST_LOG` is set (e.g.
/// `RUST_LOG=poolwarden=debug`); silent otherwise.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Tests that measure time or load the machine run one at a time within a
/// test binary (2 cores): hold this for the whole test.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Run a blocking testkit call without stalling the runtime's workers (on a
/// current-thread runtime it simply runs).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A fresh private PostgreSQL with these settings (`name`, `value`).
pub(crate) fn start_postgres(settings: &[(&str, &str)]) -> Postgres {
    init_tracing();
    blocking(|| {
        let mut b = Postgres::builder();
        for (name, value) in settings {
            b = b.setting(name, value);
        }
        b.start()
            .unwrap_or_else(|e| panic!("starting a private PostgreSQL {settings:?}: {e}"))
    })
}

/// One private PostgreSQL (default settings) shared by the tests of a
/// binary that run at the same time; it is killed when the last of them
/// drops it. Only for tests that change no server-global state and never
/// stop it.
pub(crate) fn shared_postgres() -> Arc<Postgres> {
    static SHARED: Mutex<Weak<Postgres>> = parking_lot::const_mutex(Weak::new());
    init_tracing();
    blocking(|| {
        let mut slot = SHARED.lock();
        if let Some(db) = slot.upgrade() {
            return db;
        }
        let db = Arc::new(
            Postgres::start().unwrap_or_else(|e| panic!("starting a private PostgreSQL: {e}")),
        );
        *slot = Arc::downgrade(&db);
        db
    })
}

/// Admin SQL as the superuser through `psql`.
pub(crate) fn admin(db: &Postgres, sql: &str) -> Vec<Vec<String>> {
    blocking(|| {
        db.admin(sql)
            .unwrap_or_else(|e| panic!("admin SQL {sql:?}: {e}"))
    })
}

/// The backend pids of the pool's sessions (`application_name`
/// `poolwarden`).
pub(crate) fn pool_backends(db: &Postgres) -> Vec<u32> {
    admin(
        db,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'poolwarden'",
    )
    .iter()
    .filter_map(|row| row.first()?.parse().ok())
    .collect()
}

/// A pool builder for `url` with `events` installed.
pub(crate) fn builder(url: &str, events: &Arc<Events>) -> Builder<PgManager> {
    let manager = PgManager::from_url(url).expect("valid PostgreSQL URL");
    builder_for(manager, events)
}

/// A pool builder for `manager` with `events` installed.
pub(crate) fn builder_for(manager: PgManager, events: &Arc<Events>) -> Builder<PgManager> {
    Pool::builder(manager)
        .name("faults")
        .observer(Arc::clone(events) as Arc<dyn Observer>)
}

/// `SELECT 42` through a guard.
pub(crate) async fn select_42(c: &mut Guard) -> Result<Option<i32>, poolwarden_postgres::Error> {
    let row = c.query_one("SELECT 42", &[]).await?;
    Ok(row.get(0))
}

/// The server's pid for the session behind a guard.
pub(crate) async fn backend_pid(c: &mut Guard) -> u32 {
    let row = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("SELECT pg_backend_pid()");
    row.get::<_, i32>(0) as u32
}

/// Poll `cond` every 5 ms until it holds or `timeout` passes. Only for
/// conditions nothing signals (pool counters, server state).
/// Resumes a paused (SIGSTOP) server when dropped, also when the test fails.
pub(crate) struct Paused<'a>(&'a Postgres);

impl<'a> Paused<'a> {
    /// Pause the server and every backend (SIGSTOP).
    pub(crate) fn new(db: &'a Postgres) -> Self {
        db.pause().expect("pausing the server");
        Paused(db)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.resume() {
            eprintln!("resuming the paused server failed: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Load

/// What one checkout-and-query of the load did.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Ok,
    /// `get()` failed.
    Get(PoolError),
    /// The query on a handed-out connection failed or returned a wrong row.
    Query(String),
}

/// One operation of the load: `get()`, `SELECT 42`, drop.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) task: usize,
    /// Before `get()` was called.
    pub(crate) start: Instant,
    /// When `get()` returned a connection.
    pub(crate) handed_out: Option<Instant>,
    pub(crate) end: Instant,
    /// The pool's id of the connection used.
    pub(crate) conn: Option<u64>,
    pub(crate) outcome: Outcome,
}

impl Op {
    pub(crate) fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok)
    }
}

/// Counts of the load so far, and a signal on every change.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) ok: AtomicU64,
    pub(crate) err: AtomicU64,
    notify: Notify,
}

impl Progress {
    /// Wait until at least `n` operations succeeded in all.
    pub(crate) async fn wait_ok(&self, n: u64, timeout: Duration) -> bool {
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
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) progress: Arc<Progress>,
    handles: Vec<JoinHandle<Vec<Op>>>,
}

/// Pause after a failed operation, as a client would (not synchronisation:
/// it only keeps 32 failing tasks from spinning on 2 cores).
const ERROR_PACING: Duration = Duration::from_millis(10);

impl Load {
    pub(crate) fn start(
        pool: &PgPool,
        tasks: usize,
        ops_per_task: usize,
        max_time: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let deadline = Instant::now() + max_time;
        let handles = (0..tasks)
            .map(|task| {
                let pool = pool.clone();
                let stop = Arc::clone(&stop);
                let progress = Arc::clone(&progress);
                tokio::spawn(async move {
                    let mut ops = Vec::new();
                    for _ in 0..ops_per_task {
                        if stop.load(SeqCst) || Instant::now() >= deadline {
                            break;
                        }
                        let op = one_op(&pool, task).await;
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
    pub(crate) async fn finish(self) -> Vec<Op> {
        self.stop.store(true, SeqCst);
        let mut all = Vec::new();
        for h in self.handles {
            all.extend(h.await.expect("load task panicked"));
        }
        all.sort_by_key(|op| op.start);
        all
    }

    /// Wait until every task has done its operations (or hit the time limit).
    pub(crate) async fn join(self) -> Vec<Op> {
        let mut all = Vec::new();
        for h in self.handles {
            all.extend(h.await.expect("load task panicked"));
        }
        all.sort_by_key(|op| op.start);
        all
    }
}

async fn one_op(pool: &PgPool, task: usize) -> Op {
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
            let outcome = match select_42(&mut c).await {
                Ok(Some(42)) => Outcome::Ok,
                Ok(other) => Outcome::Query(format!("wrong result: {other:?}")),
                Err(e) => Outcome::Query(e.to_string()),
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
pub(crate) fn describe_failures(ops: &[Op], origin: Instant, limit: usize) -> String {
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
pub(crate) fn error_chain(e: &PoolError) -> String {
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
pub(crate) fn ms(origin: Instant, t: Instant) -> i128 {
    if t >= origin {
        t.duration_since(origin).as_millis() as i128
    } else {
        -(origin.duration_since(t).as_millis() as i128)
    }
}
