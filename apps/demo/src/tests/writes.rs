//! Writes that tell the truth, on MariaDB and PostgreSQL: database errors
//! mapped in one place (each backend's table of codes, checked against its
//! real server), strict SQL mode, totals never clamped, `Idempotency-Key`,
//! input validation with an unchanged database, and `Tx`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use mysql_async::prelude::Queryable;
use poolwarden::Pool;
use poolwarden_axum::{Tx, TxLayer};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::common::{app_and_pool, call, pg_app_and_pool, unique};
use crate::api::error::ApiError;
use crate::store::{Kind, QueryError, Store};

/// `with_pool!(body)`: tests `body::mariadb` and `body::postgres`, each
/// running `async fn body<B: Store>(app: Router, pool: Pool<B>)`.
macro_rules! with_pool {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                let (app, pool) = crate::tests::common::app_and_pool().await;
                super::$body(app, pool).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (app, pool) = crate::tests::common::pg_app_and_pool().await;
                super::$body(app, pool).await
            }
        }
    };
}

fn status_of(e: QueryError) -> StatusCode {
    ApiError::from(e).into_response().status()
}

#[test]
fn mysql_codes_map_to_truthful_statuses() {
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
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "x".into(),
            state: "HY000".into(),
        });
        let response = ApiError::from(QueryError::from(e)).into_response();
        assert_eq!(response.status(), want, "{code}");
        if want == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "1");
        }
    }
}

/// PostgreSQL's SQLSTATEs, from the real server, through the one mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sqlstates_map_to_truthful_statuses() {
    let (_, pool) = pg_app_and_pool().await;
    let conn = pool.get().await.unwrap();
    let fail = |sql: &'static str| {
        let conn = &conn;
        async move {
            let e = conn.batch_execute(sql).await.unwrap_err();
            crate::store::postgres::kind(&e, conn)
        }
    };
    let email = unique("pgdup");
    conn.batch_execute(&format!(
        "INSERT INTO demo_accounts (name, email) VALUES ('d', '{email}')"
    ))
    .await
    .unwrap();
    let dup = format!("INSERT INTO demo_accounts (name, email) VALUES ('d', '{email}')");
    let e = conn.batch_execute(&dup).await.unwrap_err();
    assert_eq!(crate::store::postgres::kind(&e, &conn), Kind::Duplicate);
    for (sql, kind) in [
        (
            "INSERT INTO demo_orders (account_id, amount_cents, status) VALUES (-1, 1, 'new')",
            Kind::MissingReference,
        ),
        ("SELECT 9223372036854775807::BIGINT + 1", Kind::OutOfRange),
        (
            "SET statement_timeout = 1; SELECT pg_sleep(1)",
            Kind::NoAnswer {
                request_deadline: false,
            },
        ),
        ("SELEC 1", Kind::Other),
    ] {
        assert_eq!(fail(sql).await, kind, "{sql}");
    }
    for (kind, want) in [
        (Kind::MissingReference, StatusCode::NOT_FOUND),
        (Kind::Duplicate, StatusCode::CONFLICT),
        (Kind::Conflict, StatusCode::SERVICE_UNAVAILABLE),
        (Kind::OutOfRange, StatusCode::UNPROCESSABLE_ENTITY),
        (
            Kind::NoAnswer {
                request_deadline: true,
            },
            StatusCode::GATEWAY_TIMEOUT,
        ),
        (Kind::Other, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let detail = String::new();
        assert_eq!(status_of(QueryError { kind, detail }), want, "{kind:?}");
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

with_pool!(an_order_for_an_account_deleted_meanwhile_is_404_never_500);
async fn an_order_for_an_account_deleted_meanwhile_is_404_never_500<B: Store>(
    app: Router,
    pool: Pool<B>,
) {
    // The foreign key's own error, from the real server, through the one
    // mapping: what a delete racing an order's insert produces.
    let mut conn = pool.get().await.unwrap();
    let err = B::insert_order(&mut conn, (i64::MAX / 2) as u64, 1, "new")
        .await
        .unwrap_err();
    drop(conn);
    assert_eq!(status_of(err), StatusCode::NOT_FOUND);
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
async fn mariadb_sessions_run_in_strict_sql_mode() {
    let (_, pool) = app_and_pool().await;
    let mut conn = pool.get().await.unwrap();
    let mode: String = conn
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .unwrap()
        .unwrap();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
}

with_pool!(totals_beyond_64_bits_fail_the_report_instead_of_clamping);
async fn totals_beyond_64_bits_fail_the_report_instead_of_clamping<B: Store>(
    app: Router,
    _pool: Pool<B>,
) {
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
    // Clean up first: other tests' reports must not fail on these orders.
    call(&app, Method::DELETE, &format!("/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{report}");
    assert!(
        report["message"].as_str().unwrap().contains("64-bit"),
        "{report}"
    );
    assert!(
        !report.to_string().contains(&i64::MAX.to_string()),
        "{report}"
    );
}

pub(crate) async fn post_with_key(
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

with_pool!(an_idempotency_key_replays_the_first_answer);
async fn an_idempotency_key_replays_the_first_answer<B: Store>(app: Router, pool: Pool<B>) {
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
    let orders = B::orders(&mut conn, id, 0, 100).await.unwrap();
    assert_eq!(orders.len(), 1, "written once");
    drop(conn);
    let (s3, other, _) = post_with_key(&app, &uri, &key, &json!({"amount_cents": 1})).await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    let (s4, bad, _) = post_with_key(&app, &uri, "bad key", &body).await;
    assert_eq!(s4, StatusCode::BAD_REQUEST, "{bad}");
}

/// Every account (for counting).
async fn all_accounts<B: Store>(pool: &Pool<B>) -> Vec<crate::store::Account> {
    let mut conn = pool.get().await.unwrap();
    B::accounts(&mut conn, 0, u32::MAX).await.unwrap()
}

with_pool!(control_characters_and_bad_emails_are_refused_and_nothing_is_written);
async fn control_characters_and_bad_emails_are_refused_and_nothing_is_written<B: Store>(
    app: Router,
    pool: Pool<B>,
) {
    let tag = unique("ctl");
    for (name, email) in [
        ("A\u{0}da", format!("nul{tag}")),
        ("Ada\r\nX: 1", format!("crlf{tag}")),
        ("\u{1b}[31mAda", format!("esc{tag}")),
        ("Ada\u{202e}nimda", format!("bidi{tag}")),
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
    let written = all_accounts(&pool)
        .await
        .into_iter()
        .filter(|a| {
            a.email.ends_with(&tag)
                || ["a@b", "a b@c.de", "a@b.co\u{0}", "<a>@b.co"].contains(&a.email.as_str())
        })
        .count();
    assert_eq!(written, 0, "nothing written");
}

/// A handler that writes, then answers with the status it is told.
async fn write_then<B: Store>(
    mut tx: Tx<B>,
    axum::extract::Path(status): axum::extract::Path<u16>,
) -> StatusCode {
    let email = format!("{status}-{}", unique("tx"));
    B::insert_account(&mut tx, "tx", &email).await.unwrap();
    StatusCode::from_u16(status).unwrap()
}

with_pool!(tx_commits_on_success_and_rolls_back_otherwise);
async fn tx_commits_on_success_and_rolls_back_otherwise<B: Store>(_app: Router, pool: Pool<B>) {
    let app: Router = Router::new()
        .route("/w/{status}", post(write_then::<B>))
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let count = |prefix: &'static str| {
        let pool = pool.clone();
        async move {
            let mine = format!("-{}-", std::process::id());
            all_accounts(&pool)
                .await
                .iter()
                .filter(|a| a.email.starts_with(prefix) && a.email.contains(&mine))
                .count()
        }
    };
    let (c0, r0) = (count("201-").await, count("500-").await);
    let (s, _) = call(&app, Method::POST, "/w/201", None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(&app, Method::POST, "/w/500", None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count("201-").await, c0 + 1, "committed");
    assert_eq!(count("500-").await, r0, "rolled back");
}

with_pool!(duplicates_are_409);
async fn duplicates_are_409<B: Store>(app: Router, _pool: Pool<B>) {
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
    assert!(v["request_id"].is_string(), "{v}");
}
