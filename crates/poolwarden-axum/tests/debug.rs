//! `/debug/pool`: the pool's name, status, live checkouts and config.

mod common;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use common::{body_json, pool, request, Fake};
use http::StatusCode;
use poolwarden::Pool;
use poolwarden_axum::{debug_router, pool_debug_handler};
use tower::ServiceExt;

#[tokio::test]
async fn debug_pool_shows_status_checkouts_and_config() {
    let fake = Fake::default();
    let pool = pool(&fake, 3);
    let mut held = pool.get().await.unwrap();
    held.label("GET /slow req=s1");
    let app: Router = Router::new().merge(debug_router(pool.clone()));

    let response = app
        .oneshot(request("GET", "/debug/pool", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = body_json(response).await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys.len(), 4, "{body}");
    assert_eq!(body["pool"], "test");
    assert_eq!(body["status"]["in_use"], 1);
    assert_eq!(body["status"]["max_size"], 3);
    let checkouts = body["checkouts"].as_array().unwrap();
    assert_eq!(checkouts.len(), 1);
    assert_eq!(checkouts[0]["label"], "GET /slow req=s1");
    let location = checkouts[0]["location"].as_str().unwrap();
    assert!(location.starts_with(file!()), "{location}");
    assert!(checkouts[0]["held_for"].is_f64());
    assert_eq!(body["config"]["name"], "test");
    assert_eq!(body["config"]["max_size"], 3);
    drop(held);
}

#[tokio::test]
async fn unmounted_means_not_served() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .with_state(pool);
    let response = app
        .oneshot(request("GET", "/debug/pool", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[derive(Clone)]
struct AppState {
    pool: Pool<Fake>,
}

impl FromRef<AppState> for Pool<Fake> {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

#[tokio::test]
async fn the_handler_mounts_anywhere_with_an_app_state() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route("/internal/db", get(pool_debug_handler::<Fake>))
        .with_state(AppState { pool });
    let response = app
        .oneshot(request("GET", "/internal/db", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(body["status"]["in_use"], 0);
    assert_eq!(body["checkouts"], serde_json::json!([]));
}

#[tokio::test]
async fn an_extra_section_is_added_on_every_request() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let section = move || {
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        serde_json::json!([{"address": "db1:3306", "state": "up", "open": n}])
    };
    let app: Router = Router::new().merge(poolwarden_axum::debug_router_with(
        pool.clone(),
        "nodes",
        section,
    ));
    for n in 1..=2 {
        let response = app
            .clone()
            .oneshot(request("GET", "/debug/pool", None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body = body_json(response).await;
        assert_eq!(body["pool"], "test");
        assert_eq!(body["status"]["max_size"], 2);
        assert_eq!(body["nodes"][0]["address"], "db1:3306");
        assert_eq!(body["nodes"][0]["open"], n, "made per request");
        // Still the document `doctor --live` reads.
        let back: poolwarden::PoolSnapshot = serde_json::from_value(body).expect("a PoolSnapshot");
        assert_eq!(back.pool, "test");
    }
}

#[tokio::test]
#[should_panic(expected = "'status' is already a field")]
async fn an_extra_section_may_not_hide_a_field() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let _: Router = poolwarden_axum::debug_router_with(pool, "status", || 1);
}
