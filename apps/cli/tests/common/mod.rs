//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::process::Output;

/// The `poolwarden` binary, with colour and terminal width pinned.
pub fn poolwarden() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("poolwarden").expect("binary built");
    cmd.env_remove("COLUMNS")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// Runs `poolwarden ARGS`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = poolwarden().args(args).output().expect("runs");
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// Asserts a "could not diagnose" run: exit 3, exactly one line on stderr
/// starting with `error: ` and containing every one of `words`, no panic
/// and no backtrace.
pub fn assert_one_line_error(args: &[&str], words: &[&str]) -> String {
    let (code, stdout, stderr) = run(args);
    assert_eq!(
        code, 3,
        "args {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for w in words {
        assert!(lines[0].contains(w), "{w:?} not in {stderr:?}");
    }
    assert!(
        stdout.is_empty(),
        "nothing on stdout without --json: {stdout}"
    );
    lines[0].to_owned()
}

/// The findings of a `--json` report.
pub fn findings(json: &serde_json::Value) -> &Vec<serde_json::Value> {
    json["findings"].as_array().expect("findings array")
}

/// The finding of check `check`.
pub fn finding<'a>(json: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    findings(json)
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {json:#}"))
}

/// The table rows (first line of each) whose severity column is `sev`.
pub fn rows<'a>(table: &'a str, sev: &str) -> Vec<&'a str> {
    table
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(sev))
        .collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
