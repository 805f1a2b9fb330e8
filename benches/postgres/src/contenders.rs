//! The pools compared, behind one interface: check out, run simple queries,
//! give the connection back.

use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use poolwarden_postgres::PgManager;
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Which pool, and how it is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Poolwarden,
    DeadpoolFast,
    DeadpoolVerified,
    DeadpoolClean,
    Bb8,
    Sqlx,
    SqlxNoTest,
    /// N tokio-postgres connections; task i uses connection i mod N.
    Dedicated,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Poolwarden,
        Kind::DeadpoolFast,
        Kind::DeadpoolVerified,
        Kind::DeadpoolClean,
        Kind::Bb8,
        Kind::Sqlx,
        Kind::SqlxNoTest,
        Kind::Dedicated,
    ];

    /// A shorter name, for the chart.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Kind::Poolwarden => "poolwarden",
            Kind::DeadpoolFast => "deadpool Fast",
            Kind::DeadpoolVerified => "deadpool Verified",
            Kind::DeadpoolClean => "deadpool Clean",
            Kind::Bb8 => "bb8",
            Kind::Sqlx => "sqlx",
            Kind::SqlxNoTest => "sqlx, no test",
            Kind::Dedicated => "dedicated",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Poolwarden => "poolwarden-postgres (defaults)",
            Kind::DeadpoolFast => "deadpool-postgres Fast",
            Kind::DeadpoolVerified => "deadpool-postgres Verified",
            Kind::DeadpoolClean => "deadpool-postgres Clean",
            Kind::Bb8 => "bb8-postgres (defaults)",
            Kind::Sqlx => "sqlx PgPool (defaults)",
            Kind::SqlxNoTest => "sqlx PgPool, test_before_acquire(false)",
            Kind::Dedicated => "dedicated tokio-postgres connections",
        }
    }
}

/// A built pool.
pub(crate) enum Contender {
    Poolwarden(poolwarden::Pool<PgManager>),
    Deadpool(deadpool_postgres::Pool),
    Bb8(bb8::Pool<PostgresConnectionManager<NoTls>>),
    Sqlx(sqlx::PgPool),
    Dedicated(Vec<tokio::sync::Mutex<Client>>),
}

/// Build `kind` with `size` connections to `url`, waits bounded by 30 s
/// where the pool has a setting for it and bounds it by default
/// (deadpool: no timeouts, its default).
pub(crate) async fn build(kind: Kind, url: &str, size: u32) -> Contender {
    build_with(kind, url, size, None).await
}

/// Build `kind` with `size` connections to `url`, every wait the pool has
/// a setting for bounded by `timeout`: poolwarden's checkout timeout (and
/// [`Contender::session_until`]'s deadline), deadpool's wait, create and
/// recycle timeouts, bb8's connection timeout, sqlx's acquire timeout.
/// None of the peers has a bound on the query itself.
pub(crate) async fn build_bounded(
    kind: Kind,
    url: &str,
    size: u32,
    timeout: Duration,
) -> Contender {
    build_with(kind, url, size, Some(timeout)).await
}

async fn build_with(kind: Kind, url: &str, size: u32, bound: Option<Duration>) -> Contender {
    let timeout = bound.unwrap_or(Duration::from_secs(30));
    let config: tokio_postgres::Config = url.parse().unwrap();
    match kind {
        Kind::Poolwarden => Contender::Poolwarden(
            poolwarden::Pool::builder(PgManager::new(config))
                .max_size(size)
                .checkout_timeout(timeout)
                .build()
                .unwrap(),
        ),
        Kind::DeadpoolFast | Kind::DeadpoolVerified | Kind::DeadpoolClean => {
            let recycling_method = match kind {
                Kind::DeadpoolFast => RecyclingMethod::Fast,
                Kind::DeadpoolVerified => RecyclingMethod::Verified,
                _ => RecyclingMethod::Clean,
            };
            let manager = deadpool_postgres::Manager::from_config(
                config,
                NoTls,
                ManagerConfig { recycling_method },
            );
            Contender::Deadpool(
                deadpool_postgres::Pool::builder(manager)
                    .max_size(size as usize)
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .wait_timeout(bound)
                    .create_timeout(bound)
                    .recycle_timeout(bound)
                    .build()
                    .unwrap(),
            )
        }
        Kind::Bb8 => Contender::Bb8(
            bb8::Pool::builder()
                .max_size(size)
                .connection_timeout(timeout)
                .build(PostgresConnectionManager::new(config, NoTls))
                .await
                .unwrap(),
        ),
        Kind::Sqlx | Kind::SqlxNoTest => Contender::Sqlx(
            PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(timeout)
                .test_before_acquire(kind == Kind::Sqlx)
                .connect_lazy(url)
                .unwrap(),
        ),
        Kind::Dedicated => {
            let mut conns = Vec::new();
            for _ in 0..size {
                let (client, connection) = config.connect(NoTls).await.unwrap();
                tokio::spawn(connection);
                conns.push(tokio::sync::Mutex::new(client));
            }
            Contender::Dedicated(conns)
        }
    }
}

/// The first column of the first row, as text.
fn first(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
        _ => None,
    })?
}

async fn on_client(client: &Client, sqls: &[&str]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::with_capacity(sqls.len());
    for sql in sqls {
        out.push(first(
            &client.simple_query(sql).await.map_err(|e| e.to_string())?,
        ));
    }
    Ok(out)
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// sqlx's executor lifetimes do not pass `tokio::spawn`'s `Send` check
/// inside a generic async fn: a boxed, owned future does.
fn sqlx_session(
    pool: sqlx::PgPool,
    sqls: Vec<String>,
) -> BoxFuture<Result<Vec<Option<String>>, String>> {
    Box::pin(async move {
        let mut c = pool.acquire().await.map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(sqls.len());
        for sql in &sqls {
            let rows = sqlx::Executor::fetch_all(&mut *c, sqlx::raw_sql(sql))
                .await
                .map_err(|e| e.to_string())?;
            out.push(
                rows.first()
                    .and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()),
            );
        }
        Ok(out)
    })
}

impl Contender {
    /// Check out one connection (task `task`), run `sqls` as simple
    /// queries, return the first column of each one's first row.
    pub(crate) async fn session(
        &self,
        task: usize,
        sqls: &[&str],
    ) -> Result<Vec<Option<String>>, String> {
        match self {
            Contender::Poolwarden(p) => {
                let c = p.get().await.map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(sqls.len());
                for sql in sqls {
                    out.push(first(
                        &c.simple_query(sql).await.map_err(|e| e.to_string())?,
                    ));
                }
                Ok(out)
            }
            Contender::Deadpool(p) => {
                let c = p.get().await.map_err(|e| e.to_string())?;
                on_client(&c, sqls).await
            }
            Contender::Bb8(p) => {
                let c = p.get().await.map_err(|e| e.to_string())?;
                on_client(&c, sqls).await
            }
            Contender::Sqlx(p) => {
                let sqls: Vec<String> = sqls.iter().map(|s| (*s).to_owned()).collect();
                sqlx_session(p.clone(), sqls).await
            }
            Contender::Dedicated(conns) => {
                let c = conns[task % conns.len()].lock().await;
                on_client(&c, sqls).await
            }
        }
    }

    /// [`session`](Self::session) by a caller with a deadline: poolwarden
    /// checks out with it (`Pool::get_until`, which also bounds the
    /// commands); the peers have only their pool-wide timeouts.
    pub(crate) async fn session_until(
        &self,
        task: usize,
        sqls: &[&str],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Option<String>>, String> {
        match self {
            Contender::Poolwarden(p) => {
                let c = p.get_until(deadline).await.map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(sqls.len());
                for sql in sqls {
                    out.push(first(
                        &c.simple_query(sql).await.map_err(|e| e.to_string())?,
                    ));
                }
                Ok(out)
            }
            _ => self.session(task, sqls).await,
        }
    }

    /// Connections the pool has open, where it says.
    pub(crate) fn open(&self) -> Option<usize> {
        match self {
            Contender::Poolwarden(p) => Some(p.status().open as usize),
            Contender::Deadpool(p) => Some(p.status().size),
            Contender::Bb8(p) => Some(p.state().connections as usize),
            Contender::Sqlx(p) => Some(p.size() as usize),
            Contender::Dedicated(_) => None,
        }
    }

    /// Close the pool and its connections.
    pub(crate) async fn close(self) {
        match self {
            Contender::Poolwarden(p) => p.close().await,
            Contender::Deadpool(p) => p.close(),
            Contender::Bb8(p) => drop(p),
            Contender::Sqlx(p) => p.close().await,
            Contender::Dedicated(c) => drop(c),
        }
    }
}
