//! `/metrics`: the pool's metrics in the Prometheus text format (feature
//! `metrics`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// The path [`metrics_router`] serves.
pub const METRICS_PATH: &str = "/metrics";

/// The Prometheus text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Install a Prometheus recorder as the process's global `metrics` recorder
/// and return the handle that renders it:
/// `PrometheusBuilder::new().install_recorder()`.
///
/// Call it **before building any pool**: a pool registers its metrics when
/// it is built, with the recorder installed at that moment.
///
/// # Errors
/// When a global recorder is already installed.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new().install_recorder()
}

/// A handler rendering `handle` in the Prometheus text format. It runs the
/// recorder's upkeep first (which keeps histograms from growing without
/// bound; call [`PrometheusHandle::run_upkeep`] periodically yourself if
/// nothing scrapes).
pub async fn metrics_handler(State(handle): State<PrometheusHandle>) -> Response {
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A router serving `GET /metrics` from `handle`, to
/// [`merge`](Router::merge) into an app.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handle = poolwarden_axum::install_prometheus()?; // before building pools
/// let app: axum::Router = axum::Router::new().merge(poolwarden_axum::metrics_router(handle));
/// # Ok(()) }
/// ```
pub fn metrics_router<S>(handle: PrometheusHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(METRICS_PATH, get(metrics_handler))
        .with_state(handle)
}
