//! Helpers shared by the demo's tests: one private MariaDB for the whole
//! binary, the real router, and a JSON call.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use poolwarden::PoolConfig;
use poolwarden_testkit::MariaDb;
use serde_json::Value;
use tower::ServiceExt;

use crate::app::{self, AppState};
use crate::database::{self, DemoPool};
use crate::settings::{HttpSettings, ReportSettings};

/// One private server for every test in this binary.
pub(crate) fn server() -> &'static MariaDb {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER.get_or_init(|| {
        MariaDb::start().expect("a private MariaDB (apt-get install -y mariadb-server)")
    })
}

pub(crate) async fn app() -> Router {
    app_and_pool().await.0
}

/// The router and its pool.
pub(crate) async fn app_and_pool() -> (Router, DemoPool) {
    app_with(PoolConfig::default(), ReportSettings::default()).await
}

/// The router with these settings, and its pool.
pub(crate) async fn app_with(config: PoolConfig, reports: ReportSettings) -> (Router, DemoPool) {
    let db = database::open(&server().url(), true, config)
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
