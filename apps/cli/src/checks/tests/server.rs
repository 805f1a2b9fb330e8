//! The server's state and limits.

use super::*;

// ---- session / interactive

#[test]
fn session_timeout_differing_from_global_is_info() {
    let mut f = mysql(600);
    assert!(session_timeouts(&f).is_empty());
    f.wait_timeout = Some(d(60));
    let fs = session_timeouts(&f);
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].check, "session-timeout");
    assert_eq!(fs[0].severity, Severity::Info);
    f.interactive_timeout_global = Some(d(28800));
    assert_eq!(session_timeouts(&f).len(), 2);
    f.flavor = Flavor::Postgres;
    assert!(session_timeouts(&f).is_empty());
}

// ---- F9 capacity

#[test]
fn capacity_well_below_limit_is_ok() {
    let f = capacity(&mysql(600), &cfg(), 1).unwrap();
    assert_eq!(f.severity, Severity::Ok);
    assert_eq!(f.numbers.get("demand"), Some(&serde_json::json!(10)));
    // The doctor's own connection is not counted.
    assert_eq!(
        f.numbers.get("connected_others"),
        Some(&serde_json::json!(2))
    );
}

#[test]
fn capacity_above_limit_is_an_error() {
    let mut c = cfg();
    c.max_size = 10;
    let f = capacity(&mysql(600), &c, 50).unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.failure, Some("F9"));
    assert!(
        f.message
            .contains("50 processes × (max_size 10 + max_overflow 0) = 500"),
        "{}",
        f.message
    );
    assert!(f.message.contains("max_connections 151"));
    // 80% of 151 = 120, less 2 others = 118, / 50 processes = 2.
    assert!(f
        .fix
        .unwrap()
        .contains("with 50 processes, max_size + max_overflow of at most 2"));
}

#[test]
fn capacity_counts_overflow() {
    let mut c = cfg();
    c.max_size = 10;
    c.max_overflow = 5;
    let f = capacity(&mysql(600), &c, 10).unwrap();
    assert_eq!(f.numbers.get("demand"), Some(&serde_json::json!(150)));
    assert_eq!(f.severity, Severity::Error, "150 + 2 others > 151");
}

#[test]
fn capacity_counts_those_already_connected() {
    let mut facts = mysql(600);
    facts.max_connections = Some(100);
    facts.connected = Some(31); // 30 others
    let mut c = cfg();
    c.max_size = 20;
    // 60 alone fits, 60 + 30 = 90 >= 80: warn.
    assert_eq!(capacity(&facts, &c, 3).unwrap().severity, Severity::Warn);
    facts.connected = Some(51); // 50 others: 110 > 100
    let f = capacity(&facts, &c, 3).unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("50 already connected"), "{}", f.message);
    // (80 - 50) / 3 = 10 each.
    assert!(f.fix.unwrap().contains("at most 10"));
    facts.connected = Some(91);
    let f = capacity(&facts, &c, 3).unwrap();
    assert!(f.fix.unwrap().contains("90 connections already take"));
}

#[test]
fn capacity_warns_from_80_percent() {
    let mut facts = mysql(600);
    facts.max_connections = Some(100);
    facts.connected = Some(1);
    let mut c = cfg();
    c.max_size = 79;
    assert_eq!(capacity(&facts, &c, 1).unwrap().severity, Severity::Ok);
    c.max_size = 80;
    assert_eq!(capacity(&facts, &c, 1).unwrap().severity, Severity::Warn);
    c.max_size = 100;
    assert_eq!(capacity(&facts, &c, 1).unwrap().severity, Severity::Warn);
    c.max_size = 101;
    assert_eq!(capacity(&facts, &c, 1).unwrap().severity, Severity::Error);
}

#[test]
fn capacity_subtracts_postgres_reserved_slots() {
    let mut facts = mysql(0);
    facts.flavor = Flavor::Postgres;
    facts.max_connections = Some(100);
    facts.reserved_connections = Some(3);
    facts.connected = Some(1);
    let mut c = cfg();
    c.max_size = 98;
    let f = capacity(&facts, &c, 1).unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("3 reserved"));
}

#[test]
fn capacity_unknown_without_max_connections() {
    let mut facts = mysql(600);
    facts.max_connections = None;
    assert!(capacity(&facts, &cfg(), 1).is_none());
}

#[test]
fn max_used_at_limit_warns() {
    let mut f = mysql(600);
    assert!(max_used(&f).is_none());
    f.max_used_connections = Some(130);
    assert_eq!(max_used(&f).unwrap().severity, Severity::Info);
    f.max_used_connections = Some(152);
    let m = max_used(&f).unwrap();
    assert_eq!(m.severity, Severity::Warn);
    assert_eq!(m.failure, Some("F9"));
}

// ---- F6 aborted clients

#[test]
fn no_aborted_clients_is_ok() {
    let f = aborted_clients(&mysql(600)).unwrap();
    assert_eq!(f.severity, Severity::Ok);
}

#[test]
fn many_aborted_clients_relative_to_connections_warn() {
    let mut facts = mysql(600);
    facts.connections = Some(1000);
    facts.aborted_clients = Some(120);
    let f = aborted_clients(&facts).unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F6"));
    assert_eq!(f.numbers.get("percent"), Some(&serde_json::json!(12.0)));
    assert!(f.fix.unwrap().contains("--live"));
}

#[test]
fn few_aborted_clients_are_info() {
    let mut facts = mysql(600);
    facts.connections = Some(10_000);
    facts.aborted_clients = Some(120); // 1.2%
    assert_eq!(aborted_clients(&facts).unwrap().severity, Severity::Info);
    facts.connections = Some(20);
    facts.aborted_clients = Some(5); // 25% but only 5
    assert_eq!(aborted_clients(&facts).unwrap().severity, Severity::Info);
}

#[test]
fn aborted_clients_needs_both_counters() {
    let mut facts = mysql(600);
    facts.connections = None;
    assert!(aborted_clients(&facts).is_none());
}

#[test]
fn aborted_connects_levels() {
    let mut facts = mysql(600);
    assert!(aborted_connects(&facts).is_none());
    facts.aborted_connects = Some(1);
    let f = aborted_connects(&facts).unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.failure, Some("F11"));
    facts.aborted_connects = Some(40);
    assert_eq!(aborted_connects(&facts).unwrap().severity, Severity::Warn);
}

// ---- F13 reset, packet

#[test]
fn reset_support_levels() {
    let mut facts = mysql(600);
    assert_eq!(reset_support(&facts).unwrap().severity, Severity::Ok);
    facts.reset_connection = Some(false);
    let f = reset_support(&facts).unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.failure, Some("F13"));
    facts.reset_connection = None;
    assert!(reset_support(&facts).is_none());
}

#[test]
fn max_allowed_packet_is_informational() {
    let f = max_allowed_packet(&mysql(600)).unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.failure, None);
    assert!(f.message.contains("16 MiB"));
}

#[test]
fn bytes_and_durations_read_well() {
    assert_eq!(fmt_bytes(16 << 20), "16 MiB");
    assert_eq!(fmt_bytes(1 << 30), "1 GiB");
    assert_eq!(fmt_bytes(1000), "1000 bytes");
    assert_eq!(fmt_d(d(28800)), "8h");
    assert_eq!(fmt_d(Duration::from_millis(500)), "500ms");
    assert_eq!(below(d(60)), d(48));
    assert_eq!(below(d(1)), d(1));
    assert_eq!(secs_str(312.4), "5m 12s");
    assert_eq!(secs_str(1.5), "1s 500ms");
    assert_eq!(secs_str(f64::NAN), "0s");
}

// ---- F1/F3 validation, as the MySQL manager's defaults make it

#[test]
fn the_mysql_pool_retires_idle_connections_when_its_manager_reports_wait_timeout() {
    // The MySQL manager reports wait_timeout to the pool by default (its
    // getter says so): a bypass window past it is no warning, the pool
    // retires idle connections at poolwarden::rules::server_limit.
    assert!(mysql_manager_defaults().configured_discover_server_timeout());
    let mut c = cfg();
    c.validation_bypass = d(120);
    for flavor in [Flavor::MySql, Flavor::MariaDb] {
        let mut facts = mysql(60);
        facts.flavor = flavor;
        let fs = check_server(&facts, &c, 1, None);
        let f = find(&fs, "validation");
        assert_eq!(f.severity, Severity::Ok, "{flavor:?}: {}", f.message);
        assert_eq!(
            f.numbers.get("retires_idle_after"),
            Some(&serde_json::json!(
                poolwarden::rules::server_limit(d(60)).as_secs_f64()
            )),
            "{flavor:?}"
        );
    }
}
