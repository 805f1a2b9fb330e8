//! The application: its state and its router.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use poolwarden::Pool;
use poolwarden_mysql::MySqlManager;

use crate::api::{accounts, input, orders, reports};
use crate::database::DemoPool;

/// What handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) pool: DemoPool,
    pub(crate) reports: Arc<reports::Reports>,
    /// `Some` only in the incident replay: enables `POST /reports/legacy`.
    pub(crate) legacy_hold: Option<Duration>,
}

impl FromRef<AppState> for Pool<MySqlManager> {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl AppState {
    pub(crate) fn new(pool: DemoPool) -> Self {
        AppState {
            pool,
            reports: Arc::default(),
            legacy_hold: None,
        }
    }
}

/// The API, `/health` and the operators' `/debug/pool`; `/metrics` when a
/// Prometheus handle is given.
pub(crate) fn router(
    state: AppState,
    metrics: Option<poolwarden_axum::PrometheusHandle>,
) -> Router {
    let mut app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/accounts", post(accounts::create).get(accounts::list))
        .route(
            "/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route(
            "/accounts/{id}/orders",
            post(orders::create).get(orders::list),
        )
        .route(
            "/orders/{id}",
            get(orders::get)
                .patch(orders::update)
                .delete(orders::delete),
        )
        .route("/reports", post(reports::create))
        .route("/reports/legacy", post(reports::legacy))
        .route("/reports/{id}", get(reports::get))
        .merge(poolwarden_axum::debug_router(state.pool.clone()));
    if let Some(handle) = metrics {
        app = app.merge(poolwarden_axum::metrics_router(handle));
    }
    app.layer(DefaultBodyLimit::max(input::BODY_LIMIT))
        .with_state(state)
}
