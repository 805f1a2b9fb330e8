//! Inputs the doctor cannot diagnose: exit 3, one clear line on stderr.

mod common;

use std::io::Read;
use std::net::TcpListener;

use common::{assert_one_line_error, closed_port, run};

#[test]
fn not_a_url() {
    assert_one_line_error(&["doctor", "notaurl"], &["bad URL 'notaurl'", "mysql://"]);
}

#[test]
fn unsupported_scheme() {
    assert_one_line_error(
        &["doctor", "redis://127.0.0.1/0"],
        &["unsupported scheme 'redis'"],
    );
}

#[test]
fn unreachable_port() {
    let port = closed_port();
    let url = format!("mysql://root@127.0.0.1:{port}/test");
    assert_one_line_error(
        &["doctor", &url],
        &[
            &format!("cannot connect to 127.0.0.1:{port}: connection refused"),
            "is the server running?",
        ],
    );
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    assert_one_line_error(&["doctor", &url], &["connection refused"]);
}

#[test]
fn a_cluster_with_no_readable_node() {
    let (a, b) = (closed_port(), closed_port());
    let url = format!("mysql://app:s3cretpw@127.0.0.1:{a},127.0.0.1:{b}/test");
    let line = assert_one_line_error(
        &["doctor", &url],
        &[
            "no node of the cluster could be read",
            &format!("127.0.0.1:{a}: connection refused"),
            &format!("127.0.0.1:{b}: connection refused"),
        ],
    );
    assert!(!line.contains("s3cretpw"), "{line}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts the TCP connection but never sends the MySQL greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        // Returns when the doctor gives up and closes.
        let _ = s.read(&mut buf);
    });
    let url = format!("mysql://root@127.0.0.1:{port}/test");
    assert_one_line_error(
        &["doctor", &url, "--timeout", "1s"],
        &["no answer within 1s"],
    );
    holder.join().unwrap();
}

#[test]
fn json_errors_also_go_to_stdout_as_json() {
    let (code, out, err) = run(&["doctor", "notaurl", "--json"]);
    assert_eq!(code, 3);
    assert_eq!(err.lines().count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["error"].as_str().unwrap().contains("bad URL"));
    assert_eq!(v["summary"]["exit_code"], 3);
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let (code, _, err) = run(&["doctor", "mysql://h/db", "--max-lifetime", "soon"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = run(&["doctor", "--live", "http://h/debug/pool", "--max-size", "3"]);
    assert_eq!(code, 3);
    let (code, out, _) = run(&["doctor", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit codes:") && out.contains("3  could not diagnose"),
        "{out}"
    );
}
