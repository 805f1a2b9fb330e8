//! `RequestContext`: explicit checkouts and work handed off the request path
//! carry the request's label and their own source location.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use common::{body_text, eventually, pool, request, Fake};
use http::StatusCode;
use poolwarden::{CheckoutInfo, Pool};
use poolwarden_axum::RequestContext;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

#[tokio::test]
async fn spawned_work_carries_the_request_label_and_its_own_location() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(Vec<CheckoutInfo>, u32)>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(Mutex::new(Some(release_rx)));
    let app = Router::new()
        .route(
            "/reports/{id}/export",
            post(move |ctx: RequestContext, State(pool): State<Pool<Fake>>| {
                let seen_tx = seen_tx.clone();
                let release = release_rx.lock().unwrap().take().unwrap();
                async move {
                    ctx.spawn("export", move |ctx| async move {
                        let (conn, line) = (ctx.get(&pool).await.unwrap(), line!());
                        seen_tx.send((pool.checkouts(), line)).unwrap();
                        // Long work, well after the request has ended.
                        let _ = release.await;
                        drop(conn);
                    });
                    StatusCode::ACCEPTED
                }
            }),
        )
        .with_state(pool.clone());

    let response = app
        .oneshot(request("POST", "/reports/9/export", Some("abc")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let (checkouts, line) = seen_rx.recv().await.unwrap();
    assert_eq!(checkouts.len(), 1);
    assert_eq!(
        checkouts[0].label.as_deref(),
        Some("export (spawned from POST /reports/{id}/export req=abc)")
    );
    let location = checkouts[0].location;
    assert_eq!((location.file(), location.line()), (file!(), line));

    // The request is over; the task still holds its own connection, and the
    // pool says who and where.
    let held = pool.checkouts();
    assert_eq!(held.len(), 1);
    assert!(held[0].label.as_deref().unwrap().contains("req=abc"));
    release_tx.send(()).unwrap();
    eventually(|| pool.status().in_use == 0).await;
}

#[tokio::test]
async fn explicit_checkout_in_a_handler_is_located_at_the_handler() {
    let fake = Fake::default();
    let pool = pool(&fake, 2);
    let app = Router::new()
        .route(
            "/things/{id}",
            get(
                |ctx: RequestContext, State(pool): State<Pool<Fake>>| async move {
                    let (conn, line) = (ctx.get(&pool).await.unwrap(), line!());
                    let info = &pool.checkouts()[0];
                    assert_eq!(info.location.file(), file!());
                    assert_eq!(info.location.line(), line);
                    drop(conn);
                    info.label.clone().unwrap().into_owned()
                },
            ),
        )
        .with_state(pool.clone());

    let response = app
        .oneshot(request("GET", "/things/1", Some("r-2")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "GET /things/{id} req=r-2");
}

#[tokio::test]
async fn get_timeout_labels_too_and_unmatched_requests_use_the_path() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .fallback(
            |ctx: RequestContext, State(pool): State<Pool<Fake>>| async move {
                let conn = ctx
                    .task("cleanup")
                    .get_timeout(&pool, Duration::from_millis(50))
                    .await
                    .unwrap();
                let label = pool.checkouts()[0].label.clone().unwrap();
                drop(conn);
                label.into_owned()
            },
        )
        .with_state(pool);

    let response = app
        .oneshot(request("DELETE", "/nowhere", Some("z")))
        .await
        .unwrap();
    assert_eq!(
        body_text(response).await,
        "cleanup (spawned from DELETE /nowhere req=z)"
    );
}
