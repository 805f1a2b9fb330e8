//! `poolwarden doctor postgres://…` against a private PostgreSQL server,
//! and (ignored by default) the shared one.

mod common;

use std::time::Duration;

use common::{assert_one_line_error, finding, run};
use poolwarden::Manager;
use poolwarden_postgres::{PgManager, PgServerFacts};
use poolwarden_testkit::Postgres;

/// The facts the pool's manager reads when it opens a connection to `url`.
fn manager_facts(url: &str) -> PgServerFacts {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let manager = PgManager::from_url(url).unwrap();
        let conn = tokio::time::timeout(Duration::from_secs(30), manager.connect())
            .await
            .expect("connects in time")
            .expect("connects");
        conn.server_facts().clone()
    })
}

fn secs(v: &serde_json::Value) -> Option<Duration> {
    v.as_f64().map(Duration::from_secs_f64)
}

#[test]
fn postgres_facts_checks_and_errors() {
    let pg = Postgres::builder()
        .setting("idle_session_timeout", "60s")
        .setting("idle_in_transaction_session_timeout", "20s")
        .setting("statement_timeout", "5s")
        .setting("tcp_keepalives_idle", "300")
        .start()
        .expect("private PostgreSQL starts");
    let url = pg.url();

    // The server closes idle sessions after 60 s: the default idle_timeout (10m) is above it.
    let (code, out, err) = run(&["doctor", &url, "--json"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server = &v["server"];
    assert_eq!(server["flavor"], "postgres");
    assert_eq!(server["idle_session_timeout"], 60.0);
    assert_eq!(server["idle_in_transaction_session_timeout"], 20.0);
    assert_eq!(server["statement_timeout"], 5.0);
    assert_eq!(server["tcp_keepalives_idle"], 300.0);
    assert_eq!(
        secs(&server["pool_keepalive_idle"]),
        Some(poolwarden_postgres::DEFAULT_TCP_KEEPALIVE)
    );
    assert!(server["max_connections"].as_u64().unwrap() > 0);

    // The same facts the manager reads when it opens a connection.
    let m = manager_facts(&url);
    assert_eq!(
        secs(&server["idle_session_timeout"]),
        m.idle_session_timeout
    );
    assert_eq!(
        secs(&server["idle_in_transaction_session_timeout"]),
        m.idle_in_transaction_session_timeout
    );
    assert_eq!(secs(&server["statement_timeout"]), m.statement_timeout);
    assert_eq!(secs(&server["tcp_keepalives_idle"]), m.tcp_keepalives_idle);
    assert_eq!(
        server["max_connections"].as_u64(),
        m.max_connections.map(u64::from)
    );
    assert_eq!(server["version"].as_str(), m.server_version.as_deref());

    // Judged by the pool's rules.
    let f = finding(&v, "idle-timeout");
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["failure"], "F1");
    assert_eq!(f["numbers"]["idle_session_timeout"], 60.0);
    let f = finding(&v, "validation");
    assert_eq!(f["severity"], "ok");
    assert_eq!(
        secs(&f["numbers"]["retires_idle_after"]),
        Some(poolwarden::rules::server_limit(Duration::from_secs(60)))
    );
    // 20 s is below the default leak_threshold (30 s).
    assert_eq!(finding(&v, "idle-in-transaction")["severity"], "warn");
    let f = finding(&v, "statement-timeout");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["numbers"]["statement_timeout"], 5.0);
    assert_eq!(f["numbers"]["command_timeout"], 30.0);
    assert_eq!(finding(&v, "tcp-keepalive")["severity"], "info");

    // Settings that fit: exit 0; the table names the server.
    let (code, out, _) = run(&[
        "doctor",
        &url,
        "--idle-timeout",
        "45s",
        "--max-lifetime",
        "50s",
        "--leak-threshold",
        "15s",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PostgreSQL"), "{out}");
    assert!(out.contains("statement_timeout"), "{out}");

    // No command_timeout: a frozen server would hold a command forever.
    let (code, out, _) = run(&["doctor", &url, "--json", "--command-timeout", "off"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(finding(&v, "statement-timeout")["severity"], "warn");

    let bad_pw = pg.url_for(Postgres::PW_USER, "wrong", Postgres::DATABASE);
    assert_one_line_error(&["doctor", &bad_pw], &["access denied for user 'pw_user'"]);
    let no_db = pg.url_for(Postgres::PW_USER, Postgres::PW_PASSWORD, "no_such_db");
    assert_one_line_error(&["doctor", &no_db], &["unknown database 'no_such_db'"]);
}

#[test]
fn command_timeout_is_refused_for_mysql() {
    assert_one_line_error(
        &[
            "doctor",
            "mysql://root@127.0.0.1:1/test",
            "--command-timeout=5s",
        ],
        &["--command-timeout", "PostgreSQL"],
    );
}

/// The shared server of this machine (127.0.0.1:5432, trust, database
/// `test`): `cargo test -p poolwarden-cli --test doctor_postgres -- --ignored`.
#[test]
#[ignore = "needs the shared PostgreSQL on 127.0.0.1:5432 (trust, database test)"]
fn shared_postgres_reads_what_the_manager_reads() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let (code, out, err) = run(&["doctor", url, "--json"]);
    assert!(code <= 2, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server = &v["server"];
    let m = manager_facts(url);
    assert_eq!(server["version"].as_str(), m.server_version.as_deref());
    // The doctor shows 0 for a setting that is off; the manager None.
    let same = |key: &str, manager: Option<Duration>| {
        let doctor = secs(&server[key]).filter(|d| !d.is_zero());
        assert_eq!(doctor, manager, "{key}");
    };
    same("idle_session_timeout", m.idle_session_timeout);
    same(
        "idle_in_transaction_session_timeout",
        m.idle_in_transaction_session_timeout,
    );
    same("statement_timeout", m.statement_timeout);
    same("tcp_keepalives_idle", m.tcp_keepalives_idle);
    for check in [
        "capacity",
        "statement-timeout",
        "tcp-keepalive",
        "validation",
    ] {
        assert!(finding(&v, check)["severity"].is_string(), "{check}");
    }
}
