//! The `Db` extractor: checkout per request, labels, 503 on exhaustion.

mod common;

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use common::{body_json, body_text, eventually, pool, request, Fake, Logs};
use http::StatusCode;
use poolwarden::Pool;
use poolwarden_axum::{Db, RequestContext};
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    pool: Pool<Fake>,
}

impl FromRef<AppState> for Pool<Fake> {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

/// Answers with the labels and locations of the pool's live checkouts.
async fn checkouts(db: Db<Fake>, State(pool): State<Pool<Fake>>) -> Json<serde_json::Value> {
    let list = pool.checkouts();
    Json(serde_json::json!({
        "conn": db.id,
        "labels": list.iter().map(|c| c.label.as_deref()).collect::<Vec<_>>(),
        "locations": list.iter().map(|c| c.location.to_string()).collect::<Vec<_>>(),
    }))
}

#[tokio::test]
async fn checks_out_for_the_request_and_returns_after_it() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let app = Router::new()
        .route(
            "/",
            get(|db: Db<Fake>| async move { format!("conn {}", db.id) }),
        )
        .with_state(pool.clone());

    let response = app.oneshot(request("GET", "/", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "conn 1");
    let status = pool.status();
    assert_eq!((status.checkouts, status.in_use, status.idle), (1, 0, 1));
}

#[tokio::test]
async fn label_names_method_route_and_request_id() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let app = Router::new()
        .route("/reports/{id}", get(checkouts))
        .with_state(pool.clone());

    let response = app
        .oneshot(request("GET", "/reports/42", Some("abc-123")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(
        body["labels"],
        serde_json::json!(["GET /reports/{id} req=abc-123"])
    );
    // The location of an extractor checkout is the extractor (documented).
    let location = body["locations"][0].as_str().unwrap();
    assert!(location.contains("poolwarden-axum"), "{location}");
    assert!(location.contains("db.rs"), "{location}");
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_shared_by_extractors() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let app = Router::new()
        .route(
            "/items",
            get(|ctx: RequestContext, db: Db<Fake>| async move {
                assert_eq!(ctx.request_id(), db.context().request_id());
                db.context().label()
            }),
        )
        .with_state(pool);

    let response = app.oneshot(request("GET", "/items", None)).await.unwrap();
    let label = body_text(response).await;
    let id = label.strip_prefix("GET /items req=").expect(&label);
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[tokio::test]
async fn exhausted_pool_answers_503_json_and_logs_the_holder() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route("/reports/{id}", get(checkouts))
        .with_state(AppState { pool: pool.clone() });
    let mut held = pool.get().await.unwrap();
    held.label("nightly-report job");

    let response = app
        .oneshot(request("GET", "/reports/7", Some("req-7")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "a JSON body"
    );
    let body = body_json(response).await;
    assert_eq!(body["error"], "database_unavailable");
    assert_eq!(body["request_id"], "req-7");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("try again later"));
    let text = body.to_string();
    for internal in ["nightly", "timed out", "test", "db.rs", "held", "pool"] {
        assert!(!text.contains(internal), "{internal:?} leaked in {text}");
    }

    // One error line from this crate with the pool's message: the holder,
    // its label and location, and the request that got the 503.
    let logs = logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("poolwarden_axum"))
        .unwrap_or_else(|| panic!("no error logged: {logs}"));
    assert!(line.contains("checkout timed out"), "{line}");
    assert!(line.contains("(nightly-report job)"), "the holder: {line}");
    assert!(line.contains(file!()), "the holder's location: {line}");
    assert!(line.contains("request_id=\"req-7\""), "{line}");
    assert!(line.contains("route=\"/reports/{id}\""), "{line}");
    drop(held);
}

#[tokio::test]
async fn a_db_moved_into_a_spawned_task_is_reported() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/leaky",
            get(|db: Db<Fake>| async move {
                // The mistake of the post-mortem: the request's connection
                // goes into background work.
                let id = tokio::spawn(async move { db.id }).await.unwrap();
                id.to_string()
            }),
        )
        .with_state(pool.clone());

    let response = app
        .oneshot(request("GET", "/leaky", Some("r1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let logs = logs.text();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("another task"), "{logs}");
    assert!(logs.contains("GET /leaky req=r1"), "{logs}");
    eventually(|| pool.status().in_use == 0).await;
}

#[tokio::test]
async fn a_db_used_in_its_own_request_is_not_reported() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route("/", get(|db: Db<Fake>| async move { db.id.to_string() }))
        .with_state(pool);
    let response = app.oneshot(request("GET", "/", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!logs.text().contains("another task"), "{}", logs.text());
}
