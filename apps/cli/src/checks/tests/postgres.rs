//! PostgreSQL's timeouts against the pool's and the manager's settings.

use super::*;

const COMMAND: Option<Duration> = Some(poolwarden_postgres::DEFAULT_COMMAND_TIMEOUT);

#[test]
fn defaults_against_a_default_postgres_are_clean() {
    let fs = check_server(&postgres(), &cfg(), 1, COMMAND);
    assert!(worst(&fs) <= Severity::Info, "{fs:#?}");
    assert_eq!(find(&fs, "statement-timeout").severity, Severity::Ok);
    assert_eq!(find(&fs, "idle-in-transaction").severity, Severity::Info);
    assert_eq!(find(&fs, "tcp-keepalive").severity, Severity::Info);
    // MySQL gets none of them.
    let fs = check_server(&mysql(600), &cfg(), 1, COMMAND);
    assert!(fs.iter().all(|f| f.check != "statement-timeout"
        && f.check != "idle-in-transaction"
        && f.check != "tcp-keepalive"));
}

#[test]
fn idle_in_transaction_timeout_against_leak_threshold() {
    let mut facts = postgres();
    facts.idle_in_transaction_session_timeout = None;
    assert!(idle_in_transaction(&facts, &cfg()).is_none(), "unknown");
    facts.idle_in_transaction_session_timeout = Some(Duration::ZERO);
    let f = idle_in_transaction(&facts, &cfg()).unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert!(f.message.contains("is off"), "{}", f.message);
    facts.idle_in_transaction_session_timeout = Some(d(MIN));
    let f = idle_in_transaction(&facts, &cfg()).unwrap();
    assert_eq!(f.severity, Severity::Info);
    // When the manager warns: its own fraction (3/4), not restated here.
    assert!(f.message.contains("for 75% of it, 45s"), "{}", f.message);
    assert_eq!(
        f.numbers.get("warns_idle_in_transaction_after"),
        Some(&serde_json::json!(45.0))
    );
    // Below the default leak_threshold (30 s): a leak is killed first.
    facts.idle_in_transaction_session_timeout = Some(d(20));
    let f = idle_in_transaction(&facts, &cfg()).unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(
        f.numbers.get("leak_threshold"),
        Some(&serde_json::json!(30.0))
    );
}

#[test]
fn statement_timeout_against_command_timeout() {
    let mut facts = postgres();
    // Off on the server: the manager's 30 s ends a command first.
    let f = statement_timeout(&facts, COMMAND);
    assert_eq!(f.severity, Severity::Ok);
    assert!(
        f.message
            .contains("command_timeout 30s ends a command first"),
        "{}",
        f.message
    );
    // Below it: the server cancels first (57014), and the pool keeps the
    // connection (the Postgres manager's own classification).
    facts.statement_timeout = Some(d(5));
    let f = statement_timeout(&facts, COMMAND);
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.message
            .contains("statement_timeout 5s is below command_timeout 30s"),
        "{}",
        f.message
    );
    assert!(f.message.contains("keeps the connection"), "{}", f.message);
    assert_eq!(
        f.numbers.get("statement_timeout"),
        Some(&serde_json::json!(5.0))
    );
    assert_eq!(
        f.numbers.get("command_timeout"),
        Some(&serde_json::json!(30.0))
    );
    // Equal or above: the manager's deadline comes first.
    facts.statement_timeout = Some(d(30));
    assert_eq!(statement_timeout(&facts, COMMAND).severity, Severity::Ok);
    // No command_timeout: nothing bounds a command on a frozen server.
    let f = statement_timeout(&facts, None);
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F10"));
    assert!(f.message.contains("live server only"), "{}", f.message);
    assert!(f.fix.unwrap().contains("30s"));
    facts.statement_timeout = Some(Duration::ZERO);
    let f = statement_timeout(&facts, None);
    assert!(f.message.contains("runaway query"), "{}", f.message);
}

#[test]
fn tcp_keepalives_on_both_ends() {
    let mut facts = postgres();
    let f = tcp_keepalives(&facts).unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert!(f.message.contains("after 1m"), "{}", f.message);
    assert!(f.message.contains("OS default"), "{}", f.message);
    facts.tcp_keepalives_idle = Some(d(300));
    assert!(tcp_keepalives(&facts)
        .unwrap()
        .message
        .contains("tcp_keepalives_idle 5m"));
    // keepalives=0 in the URL.
    facts.pool_keepalive_idle = None;
    let f = tcp_keepalives(&facts).unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.fix.unwrap().contains("keepalives=0"));
    facts.tcp_keepalives_idle = None;
    assert!(tcp_keepalives(&facts).is_none(), "unknown");
}

#[test]
fn idle_session_timeout_is_judged_by_the_pools_rules() {
    let mut facts = postgres();
    facts.idle_session_timeout = Some(d(5 * MIN));
    let fs = check_server(&facts, &cfg(), 1, COMMAND);
    let f = find(&fs, "idle-timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message.contains("idle_session_timeout 5m"),
        "{}",
        f.message
    );

    // A bypass window past the timeout: the Postgres manager reports
    // idle_session_timeout, so the pool retires idle connections at
    // poolwarden::rules::server_limit (45 s of 60 s) and none reaches a
    // borrower: no warning (it was one when the doctor thought the pool
    // could not know).
    facts.idle_session_timeout = Some(d(60));
    let mut c = cfg();
    c.validation_bypass = d(120);
    let fs = check_server(&facts, &c, 1, COMMAND);
    let f = find(&fs, "validation");
    assert_eq!(f.severity, Severity::Ok, "{}", f.message);
    assert_eq!(
        f.numbers.get("retires_idle_after"),
        Some(&serde_json::json!(
            poolwarden::rules::server_limit(d(60)).as_secs_f64()
        ))
    );
    assert!(
        f.message.contains("retires connections idle for 45s"),
        "{}",
        f.message
    );
}

#[test]
fn capacity_counts_reserved_slots_of_postgres() {
    let mut c = cfg();
    c.max_size = 40;
    // 100 less 3 reserved = 97; 80 % of it is 77; 40 + 0 others = 40: ok.
    assert_eq!(capacity(&postgres(), &c, 1).unwrap().severity, Severity::Ok);
    // 2 × 40 = 80 > 77: warn; 3 × 40 = 120 > 97: error.
    assert_eq!(
        capacity(&postgres(), &c, 2).unwrap().severity,
        Severity::Warn
    );
    assert_eq!(
        capacity(&postgres(), &c, 3).unwrap().severity,
        Severity::Error
    );
}
