//! The application: its state, the API router and the operators' router
//! (served on separate listeners: nothing of the admin surface is on the
//! API's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use poolwarden::{Manager, Pool};
use poolwarden_axum::{DeadlineLayer, TxLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api::error::{body, ApiError};
use crate::api::respond::json_errors;
use crate::api::retry::RetryLostRaces;
use crate::api::{accounts, input, orders, reports};
use crate::settings::{HttpSettings, ReportSettings};
use crate::store::Store;

/// What handlers share.
pub(crate) struct AppState<B: Manager> {
    pub(crate) pool: Pool<B>,
    pub(crate) reports: Arc<reports::Reports>,
    /// `Some` only in the incident replay: enables `POST /reports/legacy`.
    pub(crate) legacy_hold: Option<Duration>,
}

impl<B: Manager> Clone for AppState<B> {
    fn clone(&self) -> Self {
        AppState {
            pool: self.pool.clone(),
            reports: self.reports.clone(),
            legacy_hold: self.legacy_hold,
        }
    }
}

impl<B: Manager> FromRef<AppState<B>> for Pool<B> {
    fn from_ref(state: &AppState<B>) -> Self {
        state.pool.clone()
    }
}

impl<B: Manager> AppState<B> {
    pub(crate) fn new(pool: Pool<B>, reports: ReportSettings) -> Self {
        AppState {
            pool,
            reports: Arc::new(reports::Reports::new(reports)),
            legacy_hold: None,
        }
    }
}

/// The API and `/health`, with JSON bodies carrying the request's id on
/// every error status and the request and body timeouts of `http`.
pub(crate) fn router<B: Store>(state: AppState<B>, http: &HttpSettings) -> Router {
    finish(routes(state, http))
}

/// The outermost layer, added last: every error answer, whoever made it,
/// leaves as the one JSON error shape with the request's id
/// (`api/respond.rs`). Layers a caller adds to [`routes`] go inside it.
pub(crate) fn finish(routes: Router) -> Router {
    routes.layer(middleware::from_fn(json_errors))
}

/// [`router`] without its outermost layer (see [`finish`]).
pub(crate) fn routes<B: Store>(state: AppState<B>, http: &HttpSettings) -> Router {
    // Each write is one transaction (the `Tx` extractor begins it, TxLayer
    // rolls it back on an error, the handler commits it itself with
    // `accounts::commit` so a failed commit is answered truthfully), run
    // again whole when it lost a race (RetryLostRaces, outside it).
    let writes = Router::new()
        .route("/accounts", post(accounts::create::<B>))
        .route("/accounts/{id}/orders", post(orders::create::<B>))
        .layer(TxLayer::new())
        .layer(RetryLostRaces);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/accounts", get(accounts::list::<B>))
        .route(
            "/accounts/{id}",
            get(accounts::get::<B>)
                .patch(accounts::update::<B>)
                .delete(accounts::delete::<B>),
        )
        .route("/accounts/{id}/orders", get(orders::list::<B>))
        .merge(writes)
        .route(
            "/orders/{id}",
            get(orders::get::<B>)
                .patch(orders::update::<B>)
                .delete(orders::delete::<B>),
        )
        .route("/reports", post(reports::create::<B>))
        .route("/reports/legacy", post(reports::legacy::<B>))
        .route("/reports/{id}", get(reports::get::<B>))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            body(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(input::BODY_LIMIT))
        .layer(middleware::from_fn(crate::http::read_body))
        .layer(RequestBodyTimeoutLayer::new(http.body_timeout))
        // The request's deadline: checkouts wait at most until it, the
        // handler is dropped past it (504), its connections are closed.
        .layer(DeadlineLayer::new(http.request_timeout))
        .with_state(state)
}

/// The operators' router: `/debug/pool` and, with a Prometheus handle,
/// `/metrics`. Serve it on the admin listener only.
pub(crate) fn admin_router<M: Manager>(
    pool: Pool<M>,
    metrics: Option<poolwarden_axum::PrometheusHandle>,
) -> Router {
    let mut admin = Router::new().merge(poolwarden_axum::debug_router(pool));
    if let Some(handle) = metrics {
        admin = admin.merge(poolwarden_axum::metrics_router(handle));
    }
    finish(admin.fallback(|| async { ApiError::NotFound("route") }))
}
