//! Shared helpers for the Postgres fault suite (`tests/faults_*.rs`):
//! private PostgreSQL servers, pools, and the load's operation. The
//! observer that records the pool's events and the bounded load generator
//! come from the testkit (`pool_events`, `load`), shared with the MySQL
//! suite.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use poolwarden::{Builder, Observer, Pool, PooledConnection};
use poolwarden_postgres::PgManager;
#[allow(unused_imports)] // each test file uses its own subset
pub(crate) use poolwarden_testkit::load::{
    describe_failures, error_chain, ms, Load, Op, Operation, Outcome, Progress,
};
#[allow(unused_imports)]
pub(crate) use poolwarden_testkit::pool_events::{poll_until, Events, Kind, Rec};
use poolwarden_testkit::Postgres;

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

/// The load's operation: `SELECT 42`, checked.
pub(crate) struct Select42;

impl Operation<PgManager> for Select42 {
    async fn run(&self, c: &mut Guard) -> Result<(), String> {
        match select_42(c).await {
            Ok(Some(42)) => Ok(()),
            Ok(other) => Err(format!("wrong result: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}
