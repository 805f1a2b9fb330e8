//! `poolwarden doctor postgres://…` against a private PostgreSQL server.

mod common;

use common::{assert_one_line_error, finding, run};
use poolwarden_testkit::Postgres;

#[test]
fn postgres_facts_checks_and_errors() {
    let pg = Postgres::builder()
        .setting("idle_session_timeout", "60s")
        .start()
        .expect("private PostgreSQL starts");
    let url = pg.url();

    // The server closes idle sessions after 60 s: the default idle_timeout (10m) is above it.
    let (code, out, err) = run(&["doctor", &url, "--json"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["server"]["flavor"], "postgres");
    assert_eq!(v["server"]["idle_session_timeout"], 60.0);
    assert!(v["server"]["max_connections"].as_u64().unwrap() > 0);
    let f = finding(&v, "idle-timeout");
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["failure"], "F1");
    assert_eq!(f["numbers"]["idle_session_timeout"], 60.0);

    let (code, out, _) = run(&[
        "doctor",
        &url,
        "--idle-timeout",
        "45s",
        "--max-lifetime",
        "50s",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PostgreSQL"), "{out}");

    let bad_pw = pg.url_for(Postgres::PW_USER, "wrong", Postgres::DATABASE);
    assert_one_line_error(&["doctor", &bad_pw], &["access denied for user 'pw_user'"]);
    let no_db = pg.url_for(Postgres::PW_USER, Postgres::PW_PASSWORD, "no_such_db");
    assert_one_line_error(&["doctor", &no_db], &["unknown database 'no_such_db'"]);
}
