//! The demo binary with its database frozen (SIGSTOP, issue 10): requests
//! that need the database end at their deadline with a 503/504 JSON answer,
//! the service serves again once the database resumes (no restart), and
//! SIGTERM while the database is frozen exits within `close_timeout` + 1 s.
//!
//! Every client wait is bounded ([`CLIENT_TIMEOUT`]): a hang fails the test
//! instead of blocking it. Loopback only, against a private MariaDB.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use poolwarden_testkit::MariaDb;
use serde_json::Value;

/// The demo's request deadline (`[http] request_timeout`): longer than
/// `close_timeout`, so a request in flight at SIGTERM outlives the shutdown
/// budget and must be cut by it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The demo's pool `close_timeout`: its whole shutdown's budget.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client waits for any answer: far above the deadline, so only
/// a hang reaches it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the demo may take to start (it creates its schema).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The demo process; killed if the test fails before it exits.
struct Demo {
    child: Child,
    addr: SocketAddr,
    /// The operators' listener (`/debug/pool`).
    admin: SocketAddr,
    /// The demo's stderr lines, read by a thread.
    lines: mpsc::Receiver<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(config: &std::path::Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_poolwarden-demo"))
            .env_remove("DATABASE_URL")
            .env_remove("POOLWARDEN_DEMO_CONFIG")
            .env_remove("POOLWARDEN_DEMO_LISTEN")
            .env_remove("POOLWARDEN_DEMO_ADMIN_LISTEN")
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("demo| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let line = loop {
            let left = START_TIMEOUT.saturating_sub(started.elapsed());
            let line = lines
                .recv_timeout(left)
                .expect("the demo prints its address within START_TIMEOUT");
            if line.contains("listening on http://") {
                break line;
            }
        };
        let after = |marker: &str| -> SocketAddr {
            let rest = line.split(marker).nth(1).unwrap();
            let end = rest.find(['/', ' ']).unwrap_or(rest.len());
            rest[..end].parse().expect("a socket address")
        };
        Demo {
            addr: after("listening on http://"),
            admin: after("operators: http://"),
            child,
            lines,
        }
    }

    /// Wait for the process to exit, at most `bound`.
    fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One HTTP/1.1 request over a fresh loopback connection; every read and
/// write bounded by [`CLIENT_TIMEOUT`]. Returns the status and JSON body.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        panic!("{method} {path}: no complete answer within {CLIENT_TIMEOUT:?} (a hang): {e}");
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: not HTTP: {text:?}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status: {head:?}"));
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

/// The requests that need the database.
const NEEDS_DB: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/accounts", None),
    ("GET", "/accounts/1", None),
    (
        "POST",
        "/accounts",
        Some(r#"{"name": "F", "email": "frozen@example.com"}"#),
    ),
];

#[test]
fn the_demo_with_its_database_frozen_answers_on_time_recovers_and_stops_on_time() {
    let server = MariaDb::start().expect("a private MariaDB (apt-get install -y mariadb-server)");
    let dir = std::env::temp_dir().join(format!("pw-demo-frozen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("demo.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\n[http]\nrequest_timeout = \"{}ms\"\n[pool]\nclose_timeout = \"{}ms\"\n",
            server.url(),
            REQUEST_TIMEOUT.as_millis(),
            CLOSE_TIMEOUT.as_millis()
        ),
    )
    .unwrap();
    let mut demo = Demo::start(&config);
    let (s, v) = request(demo.addr, "GET", "/accounts", None);
    assert_eq!(s, 200, "before the freeze: {v}");

    // Part 1: frozen database, requests end at their deadline.
    server.pause().expect("SIGSTOP");
    let addr = demo.addr;
    let frozen: Vec<_> = NEEDS_DB
        .iter()
        .map(|&(method, path, body)| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let (s, v) = request(addr, method, path, body);
                (method, path, s, v, started.elapsed())
            })
        })
        .collect();
    for answer in frozen {
        let (method, path, s, v, took) = answer.join().unwrap();
        eprintln!("frozen: {method} {path} -> {s} in {took:?}: {v}");
        assert!(
            s == 503 || s == 504,
            "{method} {path}: 503/504, got {s} {v}"
        );
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{method} {path}: a JSON error body, got {v}"
        );
    }
    // Requests that need no database are not held by it.
    let (s, _) = request(demo.addr, "GET", "/health", None);
    assert_eq!(s, 200, "/health while frozen");

    // Part 2: the database resumes; the same process serves again.
    server.resume().expect("SIGCONT");
    let started = Instant::now();
    let (s, v) = request(demo.addr, "GET", "/accounts", None);
    eprintln!("resumed: GET /accounts -> {s} in {:?}", started.elapsed());
    assert_eq!(s, 200, "the first request after SIGCONT is served: {v}");
    let (s, v) = request(
        demo.addr,
        "POST",
        "/accounts",
        Some(r#"{"name": "R", "email": "resumed@example.com"}"#),
    );
    assert_eq!(s, 201, "a write after SIGCONT: {v}");

    // Part 3: SIGTERM while the database is frozen, with a request in flight.
    let (s, _) = request(demo.addr, "GET", "/accounts", None);
    assert_eq!(s, 200, "warm the pool before the second freeze");
    server.pause().expect("SIGSTOP");
    let addr = demo.addr;
    let in_flight = std::thread::spawn(move || request(addr, "GET", "/accounts", None));
    // In flight: the pool shows it holding or waiting for a connection.
    let polled = Instant::now();
    loop {
        let (s, v) = request(demo.admin, "GET", "/debug/pool", None);
        assert_eq!(s, 200, "/debug/pool: {v}");
        let status = &v["status"];
        if status["in_use"].as_u64() > Some(0) || status["waiting"].as_u64() > Some(0) {
            break;
        }
        assert!(
            polled.elapsed() < CLIENT_TIMEOUT,
            "the request never reached the pool: {v}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let pid = demo.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success(), "kill -TERM {pid}");
    let bound = CLOSE_TIMEOUT + Duration::from_secs(1);
    let status = demo.wait_exit(bound);
    let took = started.elapsed();
    eprintln!(
        "SIGTERM with the database frozen: exited {status:?} after {took:?} (bound {bound:?})"
    );
    server.resume().expect("SIGCONT");
    let status = status.unwrap_or_else(|| {
        panic!("the demo did not exit within close_timeout + 1 s ({bound:?}) of SIGTERM with its database frozen")
    });
    assert!(status.success(), "clean exit: {status:?}");
    let (s, v) = in_flight.join().unwrap();
    eprintln!("in flight at SIGTERM: {s} {v}");
    assert!(
        s == 503 || s == 504,
        "the in-flight request: 503/504, got {s} {v}"
    );
    while demo.lines.try_recv().is_ok() {}
    drop(server);
}
