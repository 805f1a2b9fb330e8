//! `/debug/pool`: the pool's counts, live checkouts and configuration as
//! JSON, for operators: the core's [`PoolSnapshot`], the one definition of
//! the document that `poolwarden doctor --live` reads back.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue};
use poolwarden::{Manager, Pool, PoolSnapshot};
use serde::Serialize;

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
    no_store(Json(PoolSnapshot::of(&pool)).into_response())
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

/// [`debug_router`] with one more top-level section in the document: the
/// JSON of `section()` under `name`, made on every request. For what the
/// pool cannot know, e.g. a cluster manager's per-node rows:
///
/// ```
/// use axum::Router;
/// use poolwarden::Pool;
/// use poolwarden_mysql::ClusterManager;
///
/// // One row per node: state, open connections, writer, last reading.
/// fn admin(pool: Pool<ClusterManager>) -> Router {
///     let nodes = pool.clone();
///     poolwarden_axum::debug_router_with(pool, "nodes", move || nodes.manager().nodes())
/// }
/// ```
///
/// Readers of the document (`poolwarden doctor --live`) ignore fields they
/// do not know. Mount it as privately as [`debug_router`].
///
/// # Panics
///
/// When `name` is already a field of the document ([`PoolSnapshot`]):
/// the section would hide it.
pub fn debug_router_with<M, S, F, X>(pool: Pool<M>, name: &'static str, section: F) -> Router<S>
where
    M: Manager,
    S: Clone + Send + Sync + 'static,
    F: Fn() -> X + Clone + Send + Sync + 'static,
    X: Serialize,
{
    let fields = serde_json::to_value(PoolSnapshot::of(&pool)).unwrap_or_default();
    assert!(
        fields.get(name).is_none(),
        "debug_router_with: '{name}' is already a field of /debug/pool"
    );
    let handler = move || {
        let pool = pool.clone();
        let section = section.clone();
        async move {
            let mut doc = serde_json::to_value(PoolSnapshot::of(&pool)).unwrap_or_default();
            if let Some(map) = doc.as_object_mut() {
                let extra = serde_json::to_value(section()).unwrap_or_else(|e| {
                    serde_json::Value::String(format!("cannot serialise this section: {e}"))
                });
                map.insert(name.to_owned(), extra);
            }
            no_store(Json(doc).into_response())
        }
    };
    Router::new().route(DEBUG_POOL_PATH, get(handler))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
