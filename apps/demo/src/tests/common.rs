//! Helpers shared by the demo's tests: one private MariaDB for the whole
//! binary, the machine's shared PostgreSQL in a schema of this process's
//! own, the real router, and a JSON call.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use poolwarden::{Pool, PoolConfig};
use poolwarden_mysql::MySqlManager;
use poolwarden_postgres::PgManager;
use poolwarden_testkit::MariaDb;
use serde_json::Value;
use tower::ServiceExt;

use crate::app::{self, AppState};
use crate::database;
use crate::settings::{HttpSettings, ReportSettings};
use crate::store::Store;

/// One private server for every test in this binary.
pub(crate) fn server() -> &'static MariaDb {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER.get_or_init(|| {
        MariaDb::start().expect("a private MariaDB (apt-get install -y mariadb-server)")
    })
}

/// The machine's shared PostgreSQL (trust, database `test`).
pub(crate) const SHARED_PG: &str = "postgres://root@127.0.0.1:5432/test";

/// The schema prefix of the demo's tests on the shared PostgreSQL.
const PG_SCHEMA_PREFIX: &str = "pw_demo_test_";

/// A URL for the shared PostgreSQL whose sessions work in a schema of this
/// test process's own (`search_path`, set at connect through `options`, so
/// resets keep it): tests running at once never see each other's tables.
/// Schemas left by test processes that are gone are dropped first.
pub(crate) async fn pg_url() -> String {
    static URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    URL.get_or_init(|| async {
        let schema = format!("{PG_SCHEMA_PREFIX}{}", std::process::id());
        let pool = Pool::builder(PgManager::from_url(SHARED_PG).unwrap())
            .build_and_connect()
            .await
            .expect("the shared PostgreSQL at 127.0.0.1:5432");
        let conn = pool.get().await.unwrap();
        let rows = conn
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&format!("{PG_SCHEMA_PREFIX}%")],
            )
            .await
            .unwrap();
        for row in rows {
            let name: String = row.get(0);
            let pid = name.trim_start_matches(PG_SCHEMA_PREFIX);
            if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .unwrap();
            }
        }
        conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .unwrap();
        drop(conn);
        pool.close().await;
        format!("{SHARED_PG}?options=-c%20search_path%3D{schema}")
    })
    .await
    .clone()
}

/// The router on the private MariaDB.
pub(crate) async fn app() -> Router {
    app_and_pool().await.0
}

/// The router on the private MariaDB, and its pool.
pub(crate) async fn app_and_pool() -> (Router, Pool<MySqlManager>) {
    app_with(PoolConfig::default(), ReportSettings::default()).await
}

/// The router on the private MariaDB with these settings, and its pool.
pub(crate) async fn app_with(
    config: PoolConfig,
    reports: ReportSettings,
) -> (Router, Pool<MySqlManager>) {
    app_on::<MySqlManager>(&server().url(), config, reports).await
}

/// The router on the shared PostgreSQL (this process's schema), and its pool.
pub(crate) async fn pg_app_and_pool() -> (Router, Pool<PgManager>) {
    app_on::<PgManager>(
        &pg_url().await,
        PoolConfig::default(),
        ReportSettings::default(),
    )
    .await
}

/// The router on the database at `url`, and its pool.
pub(crate) async fn app_on<B: Store>(
    url: &str,
    config: PoolConfig,
    reports: ReportSettings,
) -> (Router, Pool<B>) {
    let db = database::open::<B>(url, true, config)
        .await
        .expect("database");
    let pool = db.pool.clone();
    let state = AppState::new(db.pool.clone(), reports);
    (app::router(state, &HttpSettings::default()), pool)
}

pub(crate) async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

pub(crate) fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}@example.com",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
