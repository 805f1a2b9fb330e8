//! `/debug/pool`: the pool's counts, live checkouts and configuration as
//! JSON, for operators: the core's [`PoolSnapshot`], the one definition of
//! the document that `poolwarden doctor --live` reads back.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue};
use poolwarden::{Manager, Pool, PoolSnapshot};

/// The path [`debug_router`] serves.
pub const DEBUG_POOL_PATH: &str = "/debug/pool";

/// A handler answering with the [`PoolSnapshot`] of the state's pool (never
/// cached). Mount it yourself to serve several pools or another path; the
/// pool comes from the router's state through
/// [`FromRef`](axum::extract::FromRef).
///
/// ```
/// # use axum::{routing::get, Router};
/// # use poolwarden::{Manager, Pool};
/// # use poolwarden_axum::pool_debug_handler;
/// fn ops<M: Manager>(pool: Pool<M>) -> Router {
///     Router::new()
///         .route("/internal/db", get(pool_debug_handler::<M>))
///         .with_state(pool)
/// }
/// ```
pub async fn pool_debug_handler<M: Manager>(State(pool): State<Pool<M>>) -> Response {
    let mut response = Json(PoolSnapshot::of(&pool)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A router serving `GET /debug/pool` for `pool`, to
/// [`merge`](Router::merge) into an app.
///
/// Nothing is served unless it is mounted. It shows labels (request ids,
/// routes) and source locations: mount it on an internal listener, or behind
/// the app's authentication.
///
/// ```
/// # use axum::Router;
/// # use poolwarden::{Manager, Pool};
/// fn app<M: Manager>(pool: Pool<M>) -> Router {
///     Router::new().merge(poolwarden_axum::debug_router(pool))
/// }
/// ```
pub fn debug_router<M, S>(pool: Pool<M>) -> Router<S>
where
    M: Manager,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(DEBUG_POOL_PATH, get(pool_debug_handler::<M>))
        .with_state(pool)
}
