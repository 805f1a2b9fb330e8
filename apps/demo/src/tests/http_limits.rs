//! The HTTP server's limits over real loopback sockets, on a paused clock:
//! slow and idle clients are disconnected, the connection cap holds, a
//! keep-alive connection survives handlers that ignore the body, and every
//! error status has a JSON body.

use std::time::Duration;

use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use poolwarden::Pool;
use poolwarden_axum::DeadlineLayer;
use poolwarden_mysql::MySqlManager;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::common::call;
use crate::api::error::ApiError;
use crate::app::{self, AppState};
use crate::settings::{HttpSettings, ReportSettings};

/// Longer than any timeout here: a read that outlives it was never answered.
const NEVER: Duration = Duration::from_secs(3600);

/// The demo's router on a pool whose server is down (nothing here needs it).
fn router(http: &HttpSettings) -> Router {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manager = MySqlManager::from_url(&format!("mysql://root@127.0.0.1:{port}/none")).unwrap();
    let pool = Pool::builder(manager).build().unwrap();
    app::router(AppState::new(pool, ReportSettings::default()), http)
}

async fn start(http: HttpSettings) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = router(&http);
    tokio::spawn(async move {
        crate::http::serve(listener, router, &http, std::future::pending()).await
    });
    addr
}

/// One response: status and body; `None` when the server closed the
/// connection first.
async fn response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(NEVER, s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            Ok(_) => return None,
            Err(_) => panic!("no answer and the connection was never closed"),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

fn limits() -> HttpSettings {
    HttpSettings {
        header_read_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        ..HttpSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn idle_and_slow_clients_are_disconnected() {
    let addr = start(limits()).await;
    // Idle: connected, nothing sent.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(response(&mut idle).await.map(|r| r.0).unwrap_or(408), 408);
    // Idle after a request on a keep-alive connection.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut kept).await.unwrap().0, 200);
    assert_eq!(response(&mut kept).await.map(|r| r.0).unwrap_or(408), 408);
    // A partial header.
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert_eq!(
        response(&mut partial).await.map(|r| r.0).unwrap_or(408),
        408
    );
    // A partial body: 408 with a JSON body.
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        b"POST /accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"na",
    )
    .await
    .unwrap();
    let (status, text) = response(&mut body).await.expect("an answer");
    assert_eq!(status, 408, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"], "request_timeout", "{v}");
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_holds_further_clients_in_the_backlog() {
    let addr = start(HttpSettings {
        header_read_timeout: NEVER * 2,
        max_connections: 2,
        ..HttpSettings::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    for s in [&mut first, &mut second] {
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(response(s).await.unwrap().0, 200);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_secs(60), third.read(&mut byte))
            .await
            .is_err(),
        "a third connection is not served while two are open"
    );
    drop(first);
    assert_eq!(
        response(&mut third).await.unwrap().0,
        200,
        "served once one closes"
    );
}

/// Real time: on a paused clock, tokio advances to the next timer whenever
/// it parks, even with socket events pending, so the body timeout would fire
/// here.
#[tokio::test]
async fn keep_alive_survives_a_body_the_handler_ignores() {
    let addr = start(HttpSettings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for i in 0..20 {
        // `/reports/legacy` answers 404 outside the replay without reading
        // the body (and without the database, which would let the paused
        // clock run ahead while a blocking name lookup runs).
        s.write_all(b"POST /reports/legacy HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n")
            .await
            .unwrap();
        // Let the server get ahead of the body (the old server answered
        // before reading it, then closed the connection under the client).
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.write_all(b"{}").await.unwrap();
        let (status, text) = response(&mut s)
            .await
            .unwrap_or_else(|| panic!("request {i}: connection closed"));
        assert_eq!(status, 404, "request {i}: {text}");
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, _) = response(&mut s)
            .await
            .unwrap_or_else(|| panic!("request {i}: connection closed after a POST with a body"));
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn every_error_status_has_a_json_body() {
    let app = router(&HttpSettings::default());
    let big = format!(
        "{{\"name\": \"{}\", \"email\": \"a@b.co\"}}",
        "x".repeat(20_000)
    );
    let cases: &[(Method, &str, Option<&str>, StatusCode)] = &[
        (Method::GET, "/no/such/route", None, StatusCode::NOT_FOUND),
        (
            Method::DELETE,
            "/reports",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/accounts",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/accounts/abc", None, StatusCode::BAD_REQUEST),
        (
            Method::GET,
            "/accounts?limit=x",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/accounts",
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (method, uri, body, want) in cases {
        let (status, v) = call(&app, method.clone(), uri, *body).await;
        assert_eq!(status, *want, "{method} {uri}: {v}");
        assert!(
            v["error"].is_string() && v["message"].is_string() && v["request_id"].is_string(),
            "{method} {uri}: {v}"
        );
    }
}

/// One request with `x-request-id: abc-123` (or none): status, body, and
/// the id echoed in the response's header.
async fn with_id(app: &Router, uri: &str, id: Option<&str>) -> (u16, Value, String) {
    let mut req = Request::get(uri);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let resp = app
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let header = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), header)
}

/// The request-deadline 504 (poolwarden-axum's), the demo's own 504 (a
/// command cut at the request's deadline), a 503 and the framework's 404
/// all have one shape, and name the request.
#[tokio::test(start_paused = true)]
async fn error_bodies_have_one_shape_and_carry_the_request_id() {
    let routes = Router::new()
        .route(
            "/cut",
            get(|| async {
                ApiError::NoAnswer {
                    request_deadline: true,
                    detail: "command cut".to_owned(),
                }
            }),
        )
        .route(
            "/late",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "never"
            }),
        )
        .route(
            "/busy",
            get(|| async { ApiError::Retry("busy".to_owned()) }),
        )
        .layer(DeadlineLayer::new(Duration::from_secs(1)));
    let app = app::finish(routes);
    for (uri, status) in [
        ("/cut", 504),
        ("/late", 504),
        ("/busy", 503),
        ("/nope", 404),
    ] {
        let (s, v, header) = with_id(&app, uri, Some("abc-123")).await;
        assert_eq!(s, status, "{uri}: {v}");
        let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["error", "message", "request_id"], "{uri}: {v}");
        assert_eq!(
            (v["request_id"].as_str(), header.as_str()),
            (Some("abc-123"), "abc-123"),
            "{uri}"
        );
        let (_, v, header) = with_id(&app, uri, None).await;
        assert_eq!(
            v["request_id"].as_str(),
            Some(header.as_str()),
            "{uri}: a made id, the same"
        );
    }
    let (_, cut, _) = with_id(&app, "/cut", None).await;
    let (_, late, _) = with_id(&app, "/late", None).await;
    assert_eq!(cut["error"], late["error"], "one code for a deadline");
}

/// hyper answers a request head beyond its buffer itself, before any of
/// the demo's code runs: 431 with an empty body (see the README's API
/// reference). This pins that behaviour: if a hyper release lets a service
/// answer it, this test fails and the README's note must change.
#[tokio::test]
async fn hyper_answers_an_oversized_head_itself_without_a_body() {
    let addr = start(HttpSettings::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = "x".repeat(512 * 1024);
    let head = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    // hyper may answer and close before it has read all of it.
    let _ = s.write_all(head.as_bytes()).await;
    let (status, body) = response(&mut s).await.expect("an answer");
    assert_eq!(status, 431);
    assert_eq!(body, "", "no body: hyper writes the status line only");
}
