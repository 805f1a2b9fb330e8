//! The application: its state, the API router and the operators' router
//! (served on separate listeners: nothing of the admin surface is on the
//! API's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use poolwarden::{Manager, Pool};
use poolwarden_axum::TxLayer;
use poolwarden_mysql::MySqlManager;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api::error::{body, ApiError};
use crate::api::{accounts, input, orders, reports};
use crate::database::DemoPool;
use crate::settings::{HttpSettings, ReportSettings};

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
    pub(crate) fn new(pool: DemoPool, reports: ReportSettings) -> Self {
        AppState {
            pool,
            reports: Arc::new(reports::Reports::new(reports)),
            legacy_hold: None,
        }
    }
}

/// The API and `/health`, with JSON bodies on every error status and the
/// request and body timeouts of `http`.
pub(crate) fn router(state: AppState, http: &HttpSettings) -> Router {
    let writes = Router::new()
        .route("/accounts", post(accounts::create))
        .route("/accounts/{id}/orders", post(orders::create))
        .layer(TxLayer::new());
    let request_timeout = http.request_timeout;
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/accounts", get(accounts::list))
        .route(
            "/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route("/accounts/{id}/orders", get(orders::list))
        .merge(writes)
        .route(
            "/orders/{id}",
            get(orders::get)
                .patch(orders::update)
                .delete(orders::delete),
        )
        .route("/reports", post(reports::create))
        .route("/reports/legacy", post(reports::legacy))
        .route("/reports/{id}", get(reports::get))
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
        .layer(middleware::from_fn(move |req, next| {
            within(request_timeout, req, next)
        }))
        .layer(middleware::from_fn(json_errors))
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
    admin
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(middleware::from_fn(json_errors))
}

/// A request that takes longer than `timeout` is answered 503.
async fn within(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Retry(format!(
            "the request took longer than {}s and was abandoned; retry it (with the same Idempotency-Key for writes)",
            timeout.as_secs_f64()
        ))
        .into_response(),
    }
}

/// Every error status gets a JSON body: responses the framework or a layer
/// made (404, 405, 408, 413, ...) have none or a text one; they are
/// replaced by `{"error": code, "message": reason}`.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let message = match status {
        StatusCode::REQUEST_TIMEOUT => "the request body was not sent in time".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "request body too large: the limit is {} KiB",
            input::BODY_LIMIT / 1024
        ),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut json = body(status, &code, &message);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
