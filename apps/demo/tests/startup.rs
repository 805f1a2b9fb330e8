//! The demo binary's start-up: secrets never printed on any path that
//! rejects bad input (flags, environment, config file, TOML syntax errors),
//! and a database URL the user gave is used or the start fails with one
//! clear line (no private server stands in for it).

use std::io::Write;
use std::process::{Command, Output};

const SECRET: &str = "S3cretPass!";

fn demo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolwarden-demo"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("POOLWARDEN_DEMO_CONFIG")
        .env_remove("RUST_LOG")
        // Loopback, ephemeral: never collides with a running demo.
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--run-for",
            "1",
        ]);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn assert_clean_failure(out: &Output, what: &str) {
    let t = text(out);
    assert!(!out.status.success(), "{what}: must fail: {t}");
    assert!(
        !t.contains("S3cret") && !t.contains("Pass!"),
        "{what}: password printed: {t}"
    );
    assert!(t.contains("error:"), "{what}: {t}");
    assert!(
        !t.contains("private MariaDB"),
        "{what}: no private server: {t}"
    );
}

const BAD_URLS: &[&str] = &[
    "mysql://pw:S3cretPass!@127.0.0.1:3306/db?foo=bar",
    "mysql://pw:S3cretPass!@127.0.0.1:99999/db",
    "mysql://pw:S3cretPass!@[::1:/db",
    "postgres://pw:S3cretPass!@127.0.0.1:5432/db?foo=bar",
    "postgres://pw:S3cretPass!@127.0.0.1:99999/db",
    "postgresql://pw:S3cretPass!@[::1:/db",
    "sqlite://pw:S3cretPass!@127.0.0.1/db",
];

#[test]
fn malformed_urls_from_flags_and_environment_never_print_the_password() {
    for url in BAD_URLS {
        let out = demo().args(["--database-url", url]).output().unwrap();
        assert_clean_failure(&out, &format!("flag {url}"));
        let out = demo().env("DATABASE_URL", url).output().unwrap();
        assert_clean_failure(&out, &format!("env {url}"));
    }
}

#[test]
fn config_files_never_print_the_password() {
    let dir = tempdir();
    for (i, body) in [
        // TOML syntax error on the database_url line (unclosed string).
        format!("database_url = \"mysql://pw:{SECRET}@127.0.0.1:3306/db\n"),
        // Valid TOML, malformed URL.
        format!("database_url = \"mysql://pw:{SECRET}@[::1:/db\"\n"),
        // A URL where another type is expected.
        format!("listen = \"mysql://pw:{SECRET}@127.0.0.1:3306/db\"\n"),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(format!("demo{i}.toml"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = demo().arg("--config").arg(&path).output().unwrap();
        assert_clean_failure(&out, body);
    }
}

#[test]
fn a_given_database_that_is_down_fails_the_start_with_one_line() {
    for scheme in ["mysql", "postgres"] {
        a_given_database_that_is_down_fails_with_one_line(scheme);
    }
}

fn a_given_database_that_is_down_fails_with_one_line(scheme: &str) {
    let port = dead_port();
    let url = format!("{scheme}://u:{SECRET}@127.0.0.1:{port}/prod");
    let out = demo().args(["--database-url", &url]).output().unwrap();
    assert_clean_failure(&out, &url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one clear line: {stderr}");
    assert!(errors[0].contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(errors[0].contains("fix the URL"), "{stderr}");
}

#[test]
fn replay_incident_help_lists_only_its_own_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_poolwarden-demo"))
        .args(["replay-incident", "--help"])
        .output()
        .unwrap();
    let help = text(&out);
    assert!(help.contains("--seconds"), "{help}");
    for ignored in ["--database-url", "--listen", "--config", "--run-for"] {
        assert!(
            !help.contains(ignored),
            "{ignored} is ignored by replay-incident: {help}"
        );
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-demo-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
