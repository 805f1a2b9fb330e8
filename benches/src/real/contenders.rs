//! The pools under test, behind one small trait, all on the same server.
//!
//! Each contender is used the way its documentation shows, with its
//! defaults unless the row's name says otherwise. All talk TCP to
//! 127.0.0.1 (mysql_async would otherwise hop to the Unix socket on
//! loopback; see [`Kind::MysqlAsyncSocket`] for that default).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, PoolConstraints, PoolOpts};
use poolwarden_mysql::MySqlManager;
use sqlx::{Executor, Row};

use crate::real::floors::{Dedicated, Minimal};
use crate::real::server::Server;

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which pool, configured how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// poolwarden-mysql with defaults (500 ms validation bypass).
    Poolwarden,
    /// poolwarden with `validation_bypass(Duration::ZERO)`: a ping at every
    /// checkout.
    PoolwardenValidateAlways,
    /// poolwarden with `WhenUnavailable::Wait`.
    PoolwardenWait,
    /// poolwarden with `command_timeout(None)`: commands not bounded, to
    /// measure what the command deadline costs.
    PoolwardenNoDeadline,
    /// sqlx `MySqlPool` with defaults (`test_before_acquire` on).
    Sqlx,
    /// sqlx with `test_before_acquire(false)`.
    SqlxNoTest,
    /// mysql_async's own `Pool` (`PoolConstraints::new(n, n)`), over TCP.
    MysqlAsync,
    /// mysql_async's `Pool` with its default `prefer_socket`: after the TCP
    /// handshake to 127.0.0.1 it reconnects through the Unix socket.
    MysqlAsyncSocket,
    /// deadpool with a mysql_async manager (recycle = ping).
    Deadpool,
    /// bb8 with a mysql_async manager (is_valid = ping, has_broken = false).
    Bb8,
    /// `n` dedicated `mysql_async::Conn`s, no pool: task `i` uses
    /// connection `i % n` through a tokio `Mutex`.
    Dedicated,
    /// The floor any pool with one shared queue pays: a tokio `Semaphore`
    /// and a `Mutex<Vec<Conn>>` of `n` raw connections, no checks at all
    /// (the micro-benchmark's baseline, on a real server).
    Minimal,
    /// [`Kind::Minimal`] over poolwarden-mysql's `MySqlConn`s (made by
    /// `MySqlManager::connect`, defaults): what the connection wrapper
    /// costs per query, without the pool.
    MinimalWrapped,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Poolwarden => "poolwarden",
            Kind::PoolwardenValidateAlways => "poolwarden, validate every checkout",
            Kind::PoolwardenWait => "poolwarden, WhenUnavailable::Wait",
            Kind::PoolwardenNoDeadline => "poolwarden, no command deadline",
            Kind::Sqlx => "sqlx",
            Kind::SqlxNoTest => "sqlx, test_before_acquire=false",
            Kind::MysqlAsync => "mysql_async Pool",
            Kind::MysqlAsyncSocket => "mysql_async Pool, Unix socket (its default)",
            Kind::Deadpool => "deadpool (recycle = ping)",
            Kind::Bb8 => "bb8 (is_valid = ping)",
            Kind::Dedicated => "dedicated Conns, no pool",
            Kind::Minimal => "minimal pool (Semaphore + Vec, no checks)",
            Kind::MinimalWrapped => "minimal pool of poolwarden-mysql MySqlConns",
        }
    }

    /// A short name for charts.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Kind::Poolwarden => "poolwarden",
            Kind::PoolwardenValidateAlways => "poolwarden (ping always)",
            Kind::PoolwardenWait => "poolwarden (Wait)",
            Kind::PoolwardenNoDeadline => "poolwarden (no deadline)",
            Kind::Sqlx => "sqlx",
            Kind::SqlxNoTest => "sqlx (no test)",
            Kind::MysqlAsync => "mysql_async",
            Kind::MysqlAsyncSocket => "mysql_async (socket)",
            Kind::Deadpool => "deadpool",
            Kind::Bb8 => "bb8",
            Kind::Dedicated => "dedicated",
            Kind::Minimal => "minimal pool",
            Kind::MinimalWrapped => "minimal pool (MySqlConn)",
        }
    }
}

/// What one operation runs after the checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    /// `SELECT 1`, result dropped.
    Select1,
    /// `SELECT CAST(v AS SIGNED)`, result checked.
    Value(i64),
    /// `SELECT SLEEP(ms / 1000)`, result dropped.
    SleepMs(u32),
}

impl Query {
    pub(crate) fn sql(self) -> Cow<'static, str> {
        match self {
            Query::Select1 => Cow::Borrowed("SELECT 1"),
            Query::Value(v) => Cow::Owned(format!("SELECT CAST({v} AS SIGNED)")),
            Query::SleepMs(ms) => Cow::Owned(format!("SELECT SLEEP({})", f64::from(ms) / 1e3)),
        }
    }
}

/// Where an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Checkout,
    Query,
    /// The query returned another value than the one asked for.
    WrongResult,
    /// The benchmark's own outer bound on one operation expired.
    Timeout,
}

#[derive(Debug, Clone)]
pub(crate) struct OpError {
    pub(crate) stage: Stage,
    pub(crate) msg: String,
}

impl OpError {
    pub(crate) fn checkout(e: impl std::fmt::Display) -> Self {
        OpError {
            stage: Stage::Checkout,
            msg: e.to_string(),
        }
    }

    fn query(e: impl std::fmt::Display) -> Self {
        OpError {
            stage: Stage::Query,
            msg: e.to_string(),
        }
    }

    fn wrong(expected: i64, got: impl std::fmt::Debug) -> Self {
        OpError {
            stage: Stage::WrongResult,
            msg: format!("expected {expected}, got {got:?}"),
        }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        OpError {
            stage: Stage::Timeout,
            msg: format!("no answer within {after:?}"),
        }
    }

    /// The message without connection-specific details, to group errors.
    pub(crate) fn short(&self) -> String {
        let stage = match self.stage {
            Stage::Checkout => "checkout",
            Stage::Query => "query",
            Stage::WrongResult => "wrong result",
            Stage::Timeout => "timeout",
        };
        let mut m: String = self.msg.chars().take(90).collect();
        if self.msg.chars().count() > 90 {
            m.push('…');
        }
        format!("{stage}: {m}")
    }
}

/// One pool (or the no-pool limit) as the scenarios drive it.
pub(crate) trait Contender: Send + Sync {
    /// Check out, run `q`, return the connection. `task` picks the
    /// connection of the no-pool limit; pools ignore it. Returns how long
    /// the checkout took.
    fn op(&self, task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>>;

    /// Close the pool (best effort; dropping it does the rest).
    fn close(&self) -> BoxFut<'_, ()>;

    /// COM_RESET_CONNECTIONs sent so far, as the client counts them
    /// (needed to count round trips; see `server::round_trips`).
    fn resets(&self) -> u64 {
        0
    }

    /// The pool's own counters, as a short text.
    fn notes(&self) -> String {
        String::new()
    }
}

pub(crate) async fn run_query<C: Queryable>(conn: &mut C, q: Query) -> Result<(), OpError> {
    match q {
        Query::Value(v) => {
            let got: Option<i64> = conn.query_first(q.sql()).await.map_err(OpError::query)?;
            if got != Some(v) {
                return Err(OpError::wrong(v, got));
            }
        }
        _ => conn.query_drop(q.sql()).await.map_err(OpError::query)?,
    }
    Ok(())
}

/// Builds a contender of `size` connections (opened lazily; see [`warm`]).
pub(crate) async fn build(
    kind: Kind,
    server: &Server,
    size: u32,
) -> Result<Arc<dyn Contender>, String> {
    let tcp = server.tcp_url();
    let opts = || Opts::from_url(&tcp).map_err(|e| e.to_string());
    Ok(match kind {
        Kind::Poolwarden
        | Kind::PoolwardenValidateAlways
        | Kind::PoolwardenWait
        | Kind::PoolwardenNoDeadline => {
            let mut manager = MySqlManager::from_url(server.url()).map_err(|e| e.to_string())?;
            if kind == Kind::PoolwardenNoDeadline {
                manager = manager.command_timeout(None);
            }
            let mut b = poolwarden::Pool::builder(manager).max_size(size);
            if kind == Kind::PoolwardenValidateAlways {
                b = b.validation_bypass(Duration::ZERO);
            }
            if kind == Kind::PoolwardenWait {
                b = b.when_unavailable(poolwarden::WhenUnavailable::Wait);
            }
            Arc::new(Pw {
                pool: b.build().map_err(|e| e.to_string())?,
            })
        }
        Kind::Sqlx | Kind::SqlxNoTest => {
            let mut o = sqlx::mysql::MySqlPoolOptions::new().max_connections(size);
            if kind == Kind::SqlxNoTest {
                o = o.test_before_acquire(false);
            }
            let pool = o.connect(server.url()).await.map_err(|e| e.to_string())?;
            Arc::new(Sqlx { pool })
        }
        Kind::MysqlAsync | Kind::MysqlAsyncSocket => {
            let base = if kind == Kind::MysqlAsync {
                opts()?
            } else {
                Opts::from_url(server.url()).map_err(|e| e.to_string())?
            };
            let constraints =
                PoolConstraints::new(size as usize, size as usize).ok_or("bad constraints")?;
            let o = mysql_async::OptsBuilder::from_opts(base)
                .pool_opts(PoolOpts::default().with_constraints(constraints));
            Arc::new(MysqlAsyncPool {
                pool: mysql_async::Pool::new(o),
            })
        }
        Kind::Deadpool => {
            let pool = deadpool::managed::Pool::builder(DeadpoolManager { opts: opts()? })
                .max_size(size as usize)
                .build()
                .map_err(|e| e.to_string())?;
            Arc::new(Deadpool { pool })
        }
        Kind::Bb8 => {
            let pool = bb8::Pool::builder()
                .max_size(size)
                .build(Bb8Manager { opts: opts()? })
                .await
                .map_err(|e| e.to_string())?;
            Arc::new(Bb8 { pool })
        }
        Kind::Dedicated => {
            let o = opts()?;
            let mut conns = Vec::new();
            for _ in 0..size {
                let c = Conn::new(o.clone()).await.map_err(|e| e.to_string())?;
                conns.push(tokio::sync::Mutex::new(Some(c)));
            }
            Arc::new(Dedicated { conns })
        }
        Kind::Minimal => {
            let o = opts()?;
            let mut conns = Vec::new();
            for _ in 0..size {
                conns.push(Conn::new(o.clone()).await.map_err(|e| e.to_string())?);
            }
            Arc::new(Minimal::new(conns))
        }
        Kind::MinimalWrapped => {
            use poolwarden::Manager;
            let manager = MySqlManager::from_url(server.url()).map_err(|e| e.to_string())?;
            let mut conns = Vec::new();
            for _ in 0..size {
                conns.push(manager.connect().await.map_err(|e| e.to_string())?);
            }
            Arc::new(Minimal::new(conns))
        }
    })
}

/// Opens `n` connections: `n` concurrent 50 ms sleeps, so each needs its
/// own. Returns the number of failed operations.
pub(crate) async fn warm(c: &Arc<dyn Contender>, n: usize) -> usize {
    let mut handles = Vec::new();
    for i in 0..n {
        let c = Arc::clone(c);
        handles.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(20), c.op(i, Query::SleepMs(50))).await
        }));
    }
    let mut failed = 0;
    for h in handles {
        if !matches!(h.await, Ok(Ok(Ok(_)))) {
            failed += 1;
        }
    }
    failed
}

// ---- poolwarden ----

struct Pw {
    pool: poolwarden::Pool<MySqlManager>,
}

impl Contender for Pw {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut conn = self.pool.get().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            run_query(&mut *conn, q).await?;
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(self.pool.close())
    }

    fn notes(&self) -> String {
        let s = self.pool.status();
        format!(
            "opened {}, pings {}, resets {}, closed {}",
            s.created,
            s.validations,
            s.resets,
            s.closed.total()
        )
    }
}

// ---- sqlx ----

struct Sqlx {
    pool: sqlx::MySqlPool,
}

impl Contender for Sqlx {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut conn = self.pool.acquire().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            let sql = q.sql();
            match q {
                Query::Value(v) => {
                    let row = (&mut *conn)
                        .fetch_one(sql.as_ref())
                        .await
                        .map_err(OpError::query)?;
                    let got: i64 = row.try_get(0).map_err(OpError::query)?;
                    if got != v {
                        return Err(OpError::wrong(v, got));
                    }
                }
                _ => {
                    (&mut *conn)
                        .execute(sql.as_ref())
                        .await
                        .map_err(OpError::query)?;
                }
            }
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(self.pool.close())
    }

    fn notes(&self) -> String {
        format!("open {}, idle {}", self.pool.size(), self.pool.num_idle())
    }
}

// ---- mysql_async's own pool ----

struct MysqlAsyncPool {
    pool: mysql_async::Pool,
}

impl Contender for MysqlAsyncPool {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut conn = self.pool.get_conn().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            run_query(&mut conn, q).await?;
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), pool.disconnect()).await;
        })
    }

    fn resets(&self) -> u64 {
        self.pool.metrics().resetting_connection.load(Relaxed) as u64
    }

    fn notes(&self) -> String {
        let m = self.pool.metrics();
        format!(
            "resetting_connection {}, dirty_connection_return {}, discarded_error_during_cleanup {}, discarded_expired_connection {}, create_failed {}",
            m.resetting_connection.load(Relaxed),
            m.dirty_connection_return.load(Relaxed),
            m.discarded_error_during_cleanup.load(Relaxed),
            m.discarded_expired_connection.load(Relaxed),
            m.create_failed.load(Relaxed),
        )
    }
}

// ---- deadpool ----

struct DeadpoolManager {
    opts: Opts,
}

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = Conn;
    type Error = mysql_async::Error;

    async fn create(&self) -> Result<Conn, mysql_async::Error> {
        Conn::new(self.opts.clone()).await
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<mysql_async::Error> {
        conn.ping()
            .await
            .map_err(deadpool::managed::RecycleError::Backend)
    }
}

struct Deadpool {
    pool: deadpool::managed::Pool<DeadpoolManager>,
}

impl Contender for Deadpool {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut conn = self.pool.get().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            run_query(&mut *conn, q).await?;
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        self.pool.close();
        Box::pin(async {})
    }

    fn notes(&self) -> String {
        let s = self.pool.status();
        format!("size {}, available {}", s.size, s.available)
    }
}

// ---- bb8 ----

struct Bb8Manager {
    opts: Opts,
}

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Conn;
    type Error = mysql_async::Error;

    async fn connect(&self) -> Result<Conn, mysql_async::Error> {
        Conn::new(self.opts.clone()).await
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        conn.ping().await
    }

    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

struct Bb8 {
    pool: bb8::Pool<Bb8Manager>,
}

impl Contender for Bb8 {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut conn = self.pool.get().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            run_query(&mut *conn, q).await?;
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        // bb8 has no close: its connections go when the pool is dropped.
        Box::pin(async {})
    }

    fn notes(&self) -> String {
        let s = self.pool.state().statistics;
        format!(
            "created {}, closed broken {}, closed invalid {}",
            s.connections_created, s.connections_closed_broken, s.connections_closed_invalid
        )
    }
}
