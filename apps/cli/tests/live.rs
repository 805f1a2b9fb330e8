//! `poolwarden doctor --live URL` against a tiny in-test HTTP server that
//! serves a canned `/debug/pool` document.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use common::{assert_one_line_error, closed_port, finding, rows, run};

/// Serves `requests` requests with `status` and `body`, then stops.
/// Returns the base URL and the thread (which yields the request lines).
fn serve(status: &'static str, body: String, requests: usize) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            seen.push(first.trim_end().to_owned());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            stream.flush().unwrap();
        }
        seen
    });
    (base, handle)
}

fn document(held_for: f64, leak_reported: bool, waiting: u32, timeouts: u64) -> String {
    serde_json::json!({
        "pool": "main",
        "status": {
            "max_size": 10, "max_open": 10, "open": 4, "idle": 1, "in_use": 3,
            "overflow": 0, "waiting": waiting, "connecting": 0, "generation": 0,
            "created": 6,
            "closed": {"stale": 0, "lifetime": 1, "idle_timeout": 0, "server_idle_timeout": 0,
                       "closed": 1, "corrupt": 0, "invalidated": 0, "reset_failed": 0,
                       "validation_failed": 0, "overflow": 0, "pool_closed": 0, "forked": 0},
            "checkouts": 1234, "timeouts": timeouts, "invalidations": 0, "connect_failures": 0,
            "leaks": 1, "resets": 1230, "validations": 40
        },
        "checkouts": [
            {"id": 41, "connection_id": 2, "location": "src/api/users.rs:31:22", "label": "GET /users",
             "held_for": 0.012, "connection_age": 300.0, "server_idle_timeout": 60.0, "leak_reported": false},
            {"id": 7, "connection_id": 3, "location": "src/jobs/report.rs:88:5", "label": "nightly-report",
             "held_for": held_for, "connection_age": 400.0, "server_idle_timeout": 60.0,
             "leak_reported": leak_reported}
        ],
        "config": {"name": "main", "max_size": 10, "leak_threshold": "30s", "max_lifetime": "30m"}
    })
    .to_string()
}

#[test]
fn a_holder_past_the_server_timeout_is_a_warning_naming_location_and_label() {
    let (base, server) = serve("200 OK", document(75.0, true, 0, 0), 2);
    let url = format!("{base}/debug/pool");
    let (code, out, err) = run(&["doctor", "--live", &url]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let warn = rows(&out, "warn");
    assert_eq!(warn.len(), 1, "one holder flagged:\n{out}");
    assert!(
        warn[0].contains("F6") && warn[0].contains("holder"),
        "{out}"
    );
    // The message may wrap; it names the location and label, and says "past".
    let section: String = out
        .lines()
        .skip_while(|l| !l.starts_with("warn"))
        .take_while(|l| !l.starts_with("ok") && !l.starts_with("info") && !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(section.contains("src/jobs/report.rs:88:5"), "{section}");
    assert!(section.contains("[nightly-report]"), "{section}");
    assert!(
        section.contains("past the server's idle timeout 1m"),
        "{section}"
    );
    assert!(
        !section.contains("src/api/users.rs"),
        "the short holder is not flagged: {section}"
    );
    // The pool's counts are shown.
    assert!(out.contains("3/10"), "{out}");
    assert!(
        out.contains("lifetime 1, closed 1"),
        "in the pool's order: {out}"
    );

    let (code, out, _) = run(&["doctor", "--live", &url, "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = finding(&v, "holder");
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["numbers"]["location"], "src/jobs/report.rs:88:5");
    assert_eq!(f["numbers"]["label"], "nightly-report");
    assert_eq!(f["numbers"]["held_for"], 75.0);
    assert_eq!(v["status"]["in_use"], 3);

    let requests = server.join().unwrap();
    assert_eq!(requests, vec!["GET /debug/pool HTTP/1.1"; 2]);
}

#[test]
fn a_healthy_pool_exits_0() {
    let (base, server) = serve("200 OK", document(2.0, false, 0, 0), 1);
    let (code, out, err) = run(&["doctor", "--live", &format!("{base}/debug/pool")]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(rows(&out, "warn").is_empty(), "{out}");
    assert!(
        rows(&out, "ok").iter().any(|r| r.contains("holders")),
        "{out}"
    );
    server.join().unwrap();
}

#[test]
fn a_holder_near_the_timeout_and_timeouts_warn() {
    let (base, server) = serve("200 OK", document(45.0, false, 0, 3), 1);
    let (code, out, _) = run(&["doctor", "--live", &format!("{base}/debug/pool")]);
    assert_eq!(code, 1, "{out}");
    let warn = rows(&out, "warn");
    assert!(warn.iter().any(|r| r.contains("holder")), "{out}");
    assert!(
        warn.iter()
            .any(|r| r.contains("timeouts") && r.contains("F7")),
        "{out}"
    );
    assert!(out.contains("near the server's idle timeout"), "{out}");
    server.join().unwrap();
}

#[test]
fn http_error_status_exits_3() {
    let (base, server) = serve("404 Not Found", "{}".to_owned(), 1);
    assert_one_line_error(
        &["doctor", "--live", &format!("{base}/nope")],
        &["answered HTTP 404"],
    );
    server.join().unwrap();
}

#[test]
fn a_document_that_is_not_a_pool_exits_3() {
    let (base, server) = serve("200 OK", r#"{"hello": "world"}"#.to_owned(), 1);
    assert_one_line_error(
        &["doctor", "--live", &format!("{base}/debug/pool")],
        &["did not answer with a poolwarden /debug/pool document"],
    );
    server.join().unwrap();
}

#[test]
fn unreachable_service_and_bad_urls_exit_3() {
    let port = closed_port();
    assert_one_line_error(
        &[
            "doctor",
            "--live",
            &format!("http://127.0.0.1:{port}/debug/pool"),
        ],
        &["connection refused"],
    );
    assert_one_line_error(&["doctor", "--live", "notaurl"], &["bad URL"]);
    assert_one_line_error(
        &["doctor", "--live", "mysql://root@127.0.0.1/test"],
        &["database URL"],
    );
}
