//! `poolwarden doctor mysql://…` against private MariaDB servers started by
//! the testkit (never the machine's shared server: one test changes a
//! global setting).

mod common;

use common::{assert_one_line_error, finding, rows, run};
use poolwarden_testkit::MariaDb;

fn start() -> MariaDb {
    MariaDb::start().expect("private MariaDB starts (apt-get install mariadb-server)")
}

#[test]
fn healthy_defaults_exit_0_with_a_table() {
    let db = start();
    let url = db.url();
    let (code, out, err) = run(&["doctor", &url]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("Server  mysql://root@127.0.0.1:"), "{out}");
    assert!(out.contains("MariaDB"), "{out}");
    let header = out
        .lines()
        .find(|l| l.starts_with("SEVERITY"))
        .expect("table header");
    for col in ["FAILURE", "CHECK", "FINDING"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        rows(&out, "warn").is_empty() && rows(&out, "error").is_empty(),
        "{out}"
    );
    let ok = rows(&out, "ok");
    for check in [
        "idle-timeout",
        "max-lifetime",
        "capacity",
        "leak-detection",
        "validation",
        "session-reset",
    ] {
        assert!(
            ok.iter().any(|r| r.contains(check)),
            "no ok {check} row in\n{out}"
        );
    }
    assert!(
        out.contains("wait_timeout 8h"),
        "the server's default wait_timeout: {out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );

    // --json parses and says the same.
    let (code, out, _) = run(&["doctor", &url, "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json is JSON");
    assert_eq!(v["mode"], "server");
    assert_eq!(v["server"]["flavor"], "mariadb");
    assert_eq!(v["server"]["wait_timeout"], 28800.0);
    assert_eq!(v["server"]["reset_connection"], true);
    assert!(v["server"]["max_connections"].as_u64().unwrap() > 0);
    assert_eq!(v["pool"]["max_size"], 10);
    assert_eq!(v["summary"]["exit_code"], 0);
    assert_eq!(finding(&v, "capacity")["severity"], "ok");

    // Too many processes for max_connections: error F9, exit 2.
    let (code, out, err) = run(&["doctor", &url, "--processes", "50", "--max-size", "10"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    let errors = rows(&out, "error");
    assert!(
        errors
            .iter()
            .any(|r| r.contains("F9") && r.contains("capacity") && r.contains("50 processes")),
        "{out}"
    );
    let (_, out, _) = run(&[
        "doctor",
        &url,
        "--processes",
        "50",
        "--max-size",
        "10",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = finding(&v, "capacity");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["failure"], "F9");
    assert_eq!(f["numbers"]["demand"], 500);
    assert_eq!(v["summary"]["exit_code"], 2);
}

#[test]
fn short_wait_timeout_and_long_lifetime_warn_f1() {
    let db = start();
    db.admin("SET GLOBAL wait_timeout=60").unwrap();
    let url = db.url();
    let (code, out, err) = run(&["doctor", &url, "--max-lifetime", "30m"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let warns = rows(&out, "warn");
    assert!(
        warns
            .iter()
            .any(|r| r.contains("F1") && r.contains("max-lifetime") && r.contains("30m")),
        "{out}"
    );
    assert!(rows(&out, "error").is_empty(), "{out}");
    assert!(
        out.contains("fix: set max_lifetime below wait_timeout"),
        "{out}"
    );

    let (code, out, _) = run(&["doctor", &url, "--max-lifetime", "30m", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["server"]["wait_timeout"], 60.0);
    let f = finding(&v, "max-lifetime");
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["failure"], "F1");
    assert_eq!(f["numbers"]["max_lifetime"], 1800.0);
    assert_eq!(f["numbers"]["wait_timeout"], 60.0);

    // Settings below the server's timeout make it clean again.
    let (code, out, _) = run(&[
        "doctor",
        &url,
        "--max-lifetime",
        "45s",
        "--idle-timeout",
        "40s",
        "--leak-threshold",
        "20s",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn pool_config_file_is_read_and_flags_override_it() {
    let db = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    std::fs::write(
        &path,
        "max_size = 40\nmax_overflow = 10\nleak_threshold = \"30s\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    // MariaDB's default max_connections is 151: 4 × 50 = 200 is too many.
    let (code, out, _) = run(&["doctor", &db.url(), "--pool-config", p, "--processes", "4"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("settings from"), "{out}");
    let (code, out, _) = run(&[
        "doctor",
        &db.url(),
        "--pool-config",
        p,
        "--processes",
        "4",
        "--max-size",
        "5",
        "--max-overflow",
        "0",
    ]);
    assert_eq!(code, 0, "{out}");

    std::fs::write(&path, "max_sise = 4\n").unwrap();
    assert_one_line_error(
        &["doctor", &db.url(), "--pool-config", p],
        &["pool config", "max_sise"],
    );
}

#[test]
fn wrong_password_and_unknown_database_exit_3_with_one_line() {
    let db = start();
    let bad_pw = db.url_for(MariaDb::PW_USER, "wrong", MariaDb::DATABASE);
    assert_one_line_error(
        &["doctor", &bad_pw],
        &[
            "access denied for user 'pw_user'",
            "check the user and password",
        ],
    );
    let no_db = db.url_for(MariaDb::PW_USER, MariaDb::PW_PASSWORD, "no_such_db");
    assert_one_line_error(&["doctor", &no_db], &["unknown database 'no_such_db'"]);
    // The right credentials work, and the password never shows.
    let good = db.url_for(MariaDb::PW_USER, MariaDb::PW_PASSWORD, MariaDb::DATABASE);
    let (code, out, _) = run(&["doctor", &good]);
    assert!(code <= 1, "{out}");
    assert!(!out.contains(MariaDb::PW_PASSWORD), "{out}");
    assert!(out.contains("pw_user:***@"), "{out}");
}
