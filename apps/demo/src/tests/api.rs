//! The API through the real router, on a private MariaDB and on the
//! machine's shared PostgreSQL (a schema of the test process's own): each
//! test of both is one body run on each ([`on_both`]).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use axum::Router;

use super::common::{call, unique};

/// `on_both!(body)`: tests `body::mariadb` and `body::postgres`, each
/// running `async fn body(app: Router)` on its server.
macro_rules! on_both {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$body(crate::tests::common::app().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(crate::tests::common::pg_app_and_pool().await.0).await
            }
        }
    };
}

on_both!(accounts_crud_and_pagination);
async fn accounts_crud_and_pagination(app: Router) {
    let email = unique("crud");
    let (s, a) = call(
        &app,
        Method::POST,
        "/accounts",
        Some(&json!({"name": "Ada", "email": email}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let id = a["id"].as_u64().unwrap();
    assert_eq!(a["email"], email);
    let (s, dup) = call(
        &app,
        Method::POST,
        "/accounts",
        Some(&json!({"name": "Ada", "email": email}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{dup}");
    assert!(dup["message"].as_str().unwrap().contains("already exists"));
    let (s, got) = call(&app, Method::GET, &format!("/accounts/{id}"), None).await;
    assert_eq!((s, got["name"].as_str()), (StatusCode::OK, Some("Ada")));
    let (s, upd) = call(
        &app,
        Method::PATCH,
        &format!("/accounts/{id}"),
        Some(r#"{"name": "Ada L."}"#),
    )
    .await;
    assert_eq!((s, upd["name"].as_str()), (StatusCode::OK, Some("Ada L.")));
    for _ in 0..3 {
        let (s, _) = call(
            &app,
            Method::POST,
            "/accounts",
            Some(&json!({"name": "x", "email": unique("page")}).to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, page) = call(&app, Method::GET, "/accounts?limit=2", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_u64().expect("more pages");
    let (_, next) = call(
        &app,
        Method::GET,
        &format!("/accounts?limit=2&after={after}"),
        None,
    )
    .await;
    assert!(next["items"][0]["id"].as_u64().unwrap() > after);
    let (s, _) = call(&app, Method::DELETE, &format!("/accounts/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, gone) = call(&app, Method::GET, &format!("/accounts/{id}"), None).await;
    assert_eq!(
        (s, gone["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

on_both!(orders_belong_to_accounts);
async fn orders_belong_to_accounts(app: Router) {
    let (_, a) = call(
        &app,
        Method::POST,
        "/accounts",
        Some(&json!({"name": "Bo", "email": unique("orders")}).to_string()),
    )
    .await;
    let id = a["id"].as_u64().unwrap();
    let (s, o) = call(
        &app,
        Method::POST,
        &format!("/accounts/{id}/orders"),
        Some(r#"{"amount_cents": 1250}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["status"], "new");
    let oid = o["id"].as_u64().unwrap();
    let (s, o) = call(
        &app,
        Method::PATCH,
        &format!("/orders/{oid}"),
        Some(r#"{"status": "paid"}"#),
    )
    .await;
    assert_eq!((s, o["status"].as_str()), (StatusCode::OK, Some("paid")));
    let (s, bad) = call(
        &app,
        Method::PATCH,
        &format!("/orders/{oid}"),
        Some(r#"{"status": "lost"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (s, list) = call(&app, Method::GET, &format!("/accounts/{id}/orders"), None).await;
    assert_eq!(
        (s, list["items"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, _) = call(
        &app,
        Method::POST,
        "/accounts/999999999/orders",
        Some(r#"{"amount_cents": 1}"#),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, Method::DELETE, &format!("/orders/{oid}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

on_both!(bad_input_gets_a_4xx_with_a_clear_message_never_a_500);
async fn bad_input_gets_a_4xx_with_a_clear_message_never_a_500(app: Router) {
    let cases: &[(Method, &str, Option<&str>, StatusCode, &str)] = &[
        (
            Method::POST,
            "/accounts",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            Method::POST,
            "/accounts",
            Some(r#"{"name": 5, "email": "a@b.co"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            Method::POST,
            "/accounts",
            Some(r#"{"name": "x"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            Method::POST,
            "/accounts",
            Some(r#"{"name": "x", "email": "nope"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "e-mail",
        ),
        (
            Method::POST,
            "/accounts",
            Some(r#"{"name": "x", "email": "a@b.co", "admin": true}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "admin",
        ),
        (
            Method::GET,
            "/accounts/abc",
            None,
            StatusCode::BAD_REQUEST,
            "positive integer",
        ),
        (
            Method::GET,
            "/accounts?limit=1000",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            Method::GET,
            "/accounts?limit=x",
            None,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            Method::POST,
            "/accounts/1/orders",
            Some(r#"{"amount_cents": -5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_cents",
        ),
        (
            Method::PATCH,
            "/accounts/1",
            Some("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
    ];
    for (method, uri, body, want, says) in cases {
        let (s, v) = call(&app, method.clone(), uri, *body).await;
        assert_eq!(s, *want, "{method} {uri} {body:?}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{method} {uri}: {message:?} should mention {says:?}"
        );
    }
    // Without a JSON content type.
    let req = Request::post("/accounts")
        .body(Body::from(r#"{"name":"x","email":"a@b.co"}"#))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Oversized.
    let huge = json!({"name": "x".repeat(40_000), "email": "a@b.co"}).to_string();
    let (s, v) = call(&app, Method::POST, "/accounts", Some(&huge)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

on_both!(reports_run_in_the_background_on_their_own_connection);
async fn reports_run_in_the_background_on_their_own_connection(app: Router) {
    let (s, r) = call(&app, Method::POST, "/reports", None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let url = r["status_url"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, v) = call(&app, Method::GET, &url, None).await;
        if v["status"] != "pending" {
            last = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "done", "{last}");
    // The legacy endpoint exists only in the replay.
    let (s, _) = call(&app, Method::POST, "/reports/legacy", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_the_pool_on_the_admin_router_only() {
    let (app, pool) = super::common::app_and_pool().await;
    let admin = crate::app::admin_router(pool, None);
    let (s, v) = call(&admin, Method::GET, "/debug/pool", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["status"]["open"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["checkouts"].is_array());
    for path in ["/debug/pool", "/metrics"] {
        let (s, v) = call(&app, Method::GET, path, None).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{path} is not on the API listener"
        );
        assert_eq!(v["error"], "not_found", "{v}");
    }
    let (s, _) = call(&app, Method::GET, "/health", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_incident_defaults_let_no_error_through_and_name_the_culprit() {
    let outcomes = crate::replay::replay::<poolwarden_mysql::MySqlManager>(12)
        .await
        .expect("replay runs");
    let (off, on) = (&outcomes[0], &outcomes[1]);
    assert!(
        off.errors > 0,
        "the post-mortem's setup lets dead connections reach requests"
    );
    assert!(!off.verdict());
    assert_eq!(
        on.errors, 0,
        "poolwarden's defaults: no error reaches a request"
    );
    assert!(
        on.verdict(),
        "and the pool names reports.rs before the server kills the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_incident_on_postgres_lets_no_error_through_and_names_the_culprit() {
    // `idle_session_timeout` in the role of `wait_timeout`.
    let outcomes = crate::replay::replay::<poolwarden_postgres::PgManager>(12)
        .await
        .expect("replay runs");
    let on = &outcomes[1];
    assert_eq!(
        on.errors, 0,
        "poolwarden's defaults: no error reaches a request"
    );
    assert!(on.verdict(), "and the pool names reports.rs");
}
