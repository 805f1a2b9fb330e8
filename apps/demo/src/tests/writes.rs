//! Writes that tell the truth: database errors mapped in one place, strict
//! SQL mode, totals never clamped, `Idempotency-Key`, input validation with
//! an unchanged database, and `Tx` on `MySqlManager`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use mysql_async::prelude::Queryable;
use poolwarden_axum::{Tx, TxLayer};
use poolwarden_mysql::MySqlManager;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::common::{app, app_and_pool, call, unique};
use crate::api::error::ApiError;

fn server_error(code: u16) -> mysql_async::Error {
    mysql_async::Error::Server(mysql_async::ServerError {
        code,
        message: "x".into(),
        state: "HY000".into(),
    })
}

#[test]
fn database_errors_map_to_truthful_statuses() {
    use poolwarden_mysql::codes;
    let cases = [
        (codes::NO_REFERENCED_ROW, StatusCode::NOT_FOUND),
        (codes::ROW_IS_REFERENCED, StatusCode::CONFLICT),
        (codes::DUP_ENTRY, StatusCode::CONFLICT),
        (codes::DEADLOCK, StatusCode::SERVICE_UNAVAILABLE),
        (codes::LOCK_WAIT_TIMEOUT, StatusCode::SERVICE_UNAVAILABLE),
        (codes::DATA_OUT_OF_RANGE, StatusCode::UNPROCESSABLE_ENTITY),
        (1064, StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (code, want) in cases {
        let response = ApiError::from(server_error(code)).into_response();
        assert_eq!(response.status(), want, "{code}");
        if want == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "1");
        }
    }
}

async fn account(app: &Router) -> u64 {
    let (s, a) = call(
        app,
        Method::POST,
        "/accounts",
        Some(&json!({"name": "Ada", "email": unique("w")}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_an_account_deleted_meanwhile_is_404_never_500() {
    let (app, pool) = app_and_pool().await;
    // The foreign key's own error, from the real server, through the one
    // mapping: what a delete racing an order's insert produces.
    let mut conn = pool.get().await.unwrap();
    let err = conn
        .exec_drop(
            "INSERT INTO demo_orders (account_id, amount_cents, status) VALUES (?, 1, 'new')",
            (u64::MAX / 2,),
        )
        .await
        .unwrap_err();
    drop(conn);
    assert_eq!(
        ApiError::from(err).into_response().status(),
        StatusCode::NOT_FOUND
    );
    // And the race itself, many times: every answer is 201 or 404.
    for _ in 0..5 {
        let id = account(&app).await;
        let creates: Vec<_> = (0..10)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    call(
                        &app,
                        Method::POST,
                        &format!("/accounts/{id}/orders"),
                        Some(&json!({"amount_cents": 100 + i}).to_string()),
                    )
                    .await
                })
            })
            .collect();
        let (s, _) = call(&app, Method::DELETE, &format!("/accounts/{id}"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        for c in creates {
            let (s, body) = c.await.unwrap();
            assert!(
                s == StatusCode::CREATED || s == StatusCode::NOT_FOUND,
                "{s}: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_beyond_64_bits_fail_the_report_instead_of_clamping() {
    let (app, pool) = app_and_pool().await;
    let mut conn = pool.get().await.unwrap();
    let mode: String = conn
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .unwrap()
        .unwrap();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
    drop(conn);
    let id = account(&app).await;
    for _ in 0..2 {
        let (s, o) = call(
            &app,
            Method::POST,
            &format!("/accounts/{id}/orders"),
            Some(&json!({"amount_cents": i64::MAX}).to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
    }
    let (s, r) = call(&app, Method::POST, "/reports", None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let url = r["status_url"].as_str().unwrap().to_owned();
    let (status, report) = loop {
        let (s, v) = call(&app, Method::GET, &url, None).await;
        if v["status"] != "pending" {
            break (s, v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{report}");
    assert!(
        report["message"].as_str().unwrap().contains("64-bit"),
        "{report}"
    );
    assert!(
        !report.to_string().contains(&i64::MAX.to_string()),
        "{report}"
    );
    // Clean up: other tests' reports must not fail on these orders.
    call(&app, Method::DELETE, &format!("/accounts/{id}"), None).await;
}

async fn post_with_key(
    app: &Router,
    uri: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        replayed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer() {
    let (app, pool) = app_and_pool().await;
    let id = account(&app).await;
    let key = unique("key");
    let uri = format!("/accounts/{id}/orders");
    let body = json!({"amount_cents": 4242});
    let (s1, first, r1) = post_with_key(&app, &uri, &key, &body).await;
    assert_eq!((s1, r1), (StatusCode::CREATED, false), "{first}");
    let (s2, second, r2) = post_with_key(&app, &uri, &key, &body).await;
    assert_eq!((s2, r2), (StatusCode::CREATED, true), "{second}");
    assert_eq!(first, second);
    let mut conn = pool.get().await.unwrap();
    let n: u64 = conn
        .exec_first(
            "SELECT COUNT(*) FROM demo_orders WHERE account_id = ?",
            (id,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1, "written once");
    drop(conn);
    let (s3, other, _) = post_with_key(&app, &uri, &key, &json!({"amount_cents": 1})).await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    let (s4, bad, _) = post_with_key(&app, &uri, "bad key", &body).await;
    assert_eq!(s4, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_bad_emails_are_refused_and_nothing_is_written() {
    let (app, pool) = app_and_pool().await;
    let count = || async {
        let mut conn = pool.get().await.unwrap();
        let n: u64 = conn
            .query_first("SELECT COUNT(*) FROM demo_accounts")
            .await
            .unwrap()
            .unwrap();
        n
    };
    let before = count().await;
    for (name, email) in [
        ("A\u{0}da", unique("nul")),
        ("Ada\r\nX: 1", unique("crlf")),
        ("\u{1b}[31mAda", unique("esc")),
        ("Ada\u{202e}nimda", unique("bidi")),
        ("Ada", "a@b".to_owned()),
        ("Ada", "a b@c.de".to_owned()),
        ("Ada", "a@b.co\u{0}".to_owned()),
        ("Ada", "<a>@b.co".to_owned()),
    ] {
        let (s, v) = call(
            &app,
            Method::POST,
            "/accounts",
            Some(&json!({"name": name, "email": email}).to_string()),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {email:?}: {v}"
        );
        assert_eq!(v["error"], "invalid", "{v}");
    }
    assert_eq!(count().await, before, "nothing written");
}

/// A handler that writes, then answers with the status it is told.
async fn write_then(
    mut tx: Tx<MySqlManager>,
    axum::extract::Path(status): axum::extract::Path<u16>,
) -> StatusCode {
    let email = unique("tx");
    tx.exec_drop(
        "INSERT INTO demo_accounts (name, email) VALUES ('tx', ?)",
        (format!("{status}-{email}"),),
    )
    .await
    .unwrap();
    StatusCode::from_u16(status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_on_mysql_manager_commits_on_success_and_rolls_back_otherwise() {
    let (_, pool) = app_and_pool().await;
    let app: Router = Router::new()
        .route("/w/{status}", post(write_then))
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let count = |prefix: &'static str| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.unwrap();
            let n: u64 = conn
                .exec_first(
                    "SELECT COUNT(*) FROM demo_accounts WHERE email LIKE CONCAT(?, '-%')",
                    (prefix,),
                )
                .await
                .unwrap()
                .unwrap();
            n
        }
    };
    let (c0, r0) = (count("201").await, count("500").await);
    let (s, _) = call(&app, Method::POST, "/w/201", None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(&app, Method::POST, "/w/500", None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count("201").await, c0 + 1, "committed");
    assert_eq!(count("500").await, r0, "rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_409() {
    let app = app().await;
    let email = unique("dup");
    let body = json!({"name": "A", "email": email}).to_string();
    assert_eq!(
        call(&app, Method::POST, "/accounts", Some(&body)).await.0,
        StatusCode::CREATED
    );
    let (s, v) = call(&app, Method::POST, "/accounts", Some(&body)).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
}
