//! Shared helpers for the fault suite (`tests/faults_*.rs`): private MariaDB
//! servers, pools, and the load's operation. The observer that records the
//! pool's events and the bounded load generator come from the testkit
//! (`pool_events`, `load`), shared with the PostgreSQL suite.
//!
//! Everything talks to the pooled connection through mysql_async's
//! `Queryable` API on the pool guard only, never naming the connection type,
//! so the suite compiles whatever type the manager hands out.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use poolwarden::{Builder, Observer, Pool, PooledConnection};
use poolwarden_mysql::mysql_async::prelude::Queryable;
use poolwarden_mysql::MySqlManager;
#[allow(unused_imports)] // each test file uses its own subset
pub(crate) use poolwarden_testkit::load::{
    describe_failures, error_chain, ms, Load, Op, Operation, Outcome, Progress,
};
#[allow(unused_imports)]
pub(crate) use poolwarden_testkit::pool_events::{poll_until, Events, Kind, Rec};
use poolwarden_testkit::MariaDb;

pub(crate) type MyPool = Pool<MySqlManager>;
pub(crate) type Guard = PooledConnection<MySqlManager>;

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

/// A fresh private MariaDB with these extra `mariadbd` arguments.
pub(crate) fn start_mariadb(args: &[&str]) -> MariaDb {
    init_tracing();
    blocking(|| {
        MariaDb::builder()
            .args(args.iter().copied())
            .start()
            .unwrap_or_else(|e| panic!("starting a private MariaDB {args:?}: {e}"))
    })
}

/// One private MariaDB (default settings) shared by the tests of a binary
/// that run at the same time; it is killed when the last of them drops it.
/// Only for tests that change no server-global state and never stop it.
pub(crate) fn shared_mariadb() -> Arc<MariaDb> {
    static SHARED: Mutex<Weak<MariaDb>> = parking_lot::const_mutex(Weak::new());
    init_tracing();
    blocking(|| {
        let mut slot = SHARED.lock();
        if let Some(db) = slot.upgrade() {
            return db;
        }
        let db = Arc::new(
            MariaDb::start().unwrap_or_else(|e| panic!("starting a private MariaDB: {e}")),
        );
        *slot = Arc::downgrade(&db);
        db
    })
}

/// Admin SQL as root through the `mariadb` client.
pub(crate) fn admin(db: &MariaDb, sql: &str) -> Vec<Vec<String>> {
    blocking(|| {
        db.admin(sql)
            .unwrap_or_else(|e| panic!("admin SQL {sql:?}: {e}"))
    })
}

/// The server thread ids of every open session (the admin client's own
/// included).
pub(crate) fn server_threads(db: &MariaDb) -> Vec<u64> {
    admin(db, "SELECT ID FROM information_schema.PROCESSLIST")
        .iter()
        .filter_map(|row| row.first()?.parse().ok())
        .collect()
}

/// A pool builder for `url` with `events` installed.
pub(crate) fn builder(url: &str, events: &Arc<Events>) -> Builder<MySqlManager> {
    let manager = MySqlManager::from_url(url).expect("valid MySQL URL");
    Pool::builder(manager)
        .name("faults")
        .observer(Arc::clone(events) as Arc<dyn Observer>)
}

/// `SELECT 42` through a guard.
pub(crate) async fn select_42(
    c: &mut Guard,
) -> Result<Option<i64>, poolwarden_mysql::mysql_async::Error> {
    c.query_first("SELECT 42").await
}

/// The server's id for the session behind a guard.
pub(crate) async fn session_id(c: &mut Guard) -> u64 {
    c.query_first::<u64, _>("SELECT CONNECTION_ID()")
        .await
        .expect("SELECT CONNECTION_ID()")
        .expect("one row")
}

/// Poll `cond` every 5 ms until it holds or `timeout` passes. Only for
/// conditions nothing signals (pool counters, server state).
/// Resumes a paused (SIGSTOP) server when dropped, also when the test fails.
pub(crate) struct Paused<'a>(&'a MariaDb);

impl<'a> Paused<'a> {
    /// Pause the server; `MariaDb::pause()` returns once every one of its
    /// threads is really stopped.
    pub(crate) fn new(db: &'a MariaDb) -> Self {
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

impl Operation<MySqlManager> for Select42 {
    async fn run(&self, c: &mut Guard) -> Result<(), String> {
        match select_42(c).await {
            Ok(Some(42)) => Ok(()),
            Ok(other) => Err(format!("wrong result: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}
