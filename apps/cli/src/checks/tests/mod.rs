//! The checks' unit tests, one file per concern; shared builders here.

mod cluster;
mod live;
mod pool;
mod postgres;
mod server;

use std::time::Duration;

use poolwarden::PoolConfig;

use super::*;
use crate::facts::{Flavor, ServerFacts};

pub(super) const MIN: u64 = 60;

pub(super) fn mysql(wait: u64) -> ServerFacts {
    ServerFacts {
        flavor: Flavor::MariaDb,
        version: "11.8.3-MariaDB".to_owned(),
        wait_timeout: Some(Duration::from_secs(wait)),
        wait_timeout_global: Some(Duration::from_secs(wait)),
        interactive_timeout: Some(Duration::from_secs(wait)),
        interactive_timeout_global: Some(Duration::from_secs(wait)),
        max_connections: Some(151),
        connected: Some(3),
        max_used_connections: Some(5),
        connections: Some(100),
        aborted_clients: Some(0),
        aborted_connects: Some(0),
        uptime: Some(3600),
        max_allowed_packet: Some(16 << 20),
        reset_connection: Some(true),
        ..ServerFacts::default()
    }
}

/// A PostgreSQL 15 with its defaults (every timeout off), as the doctor
/// reads it; the pool's sockets with the manager's keepalive.
pub(super) fn postgres() -> ServerFacts {
    ServerFacts {
        flavor: Flavor::Postgres,
        version: "15.20".to_owned(),
        idle_session_timeout: Some(Duration::ZERO),
        idle_in_transaction_session_timeout: Some(Duration::ZERO),
        statement_timeout: Some(Duration::ZERO),
        tcp_keepalives_idle: Some(Duration::ZERO),
        pool_keepalive_idle: Some(poolwarden_postgres::DEFAULT_TCP_KEEPALIVE),
        max_connections: Some(100),
        reserved_connections: Some(3),
        connected: Some(1),
        uptime: Some(3600),
        reset_connection: Some(true),
        ..ServerFacts::default()
    }
}

pub(super) fn cfg() -> PoolConfig {
    PoolConfig::default()
}

pub(super) fn d(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn find<'a>(fs: &'a [Finding], check: &str) -> &'a Finding {
    fs.iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check} finding in {fs:#?}"))
}

// ---- overall

#[test]
pub(super) fn defaults_against_a_default_server_are_clean() {
    let fs = check_server(&mysql(28800), &cfg(), 1, None);
    assert!(worst(&fs) <= Severity::Info, "{fs:#?}");
    assert_eq!(find(&fs, "idle-timeout").severity, Severity::Ok);
    assert_eq!(find(&fs, "max-lifetime").severity, Severity::Ok);
    assert_eq!(find(&fs, "capacity").severity, Severity::Ok);
    assert_eq!(find(&fs, "leak-detection").severity, Severity::Ok);
}

#[test]
pub(super) fn findings_come_worst_first() {
    let mut c = cfg();
    c.leak_threshold = None;
    let fs = check_server(&mysql(60), &c, 50, None);
    let sev: Vec<_> = fs.iter().map(|f| f.severity).collect();
    let mut sorted = sev.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sev, sorted);
    assert_eq!(fs[0].severity, Severity::Error);
}

#[test]
pub(super) fn worst_of_nothing_is_ok() {
    assert_eq!(worst(&[]), Severity::Ok);
}

// ---- config sanity

#[test]
pub(super) fn zero_max_size_is_an_error() {
    let mut c = cfg();
    c.max_size = 0;
    let f = config_sanity(&c).unwrap();
    assert_eq!(f.severity, Severity::Error);
    c.max_size = 2;
    c.min_idle = 3;
    assert_eq!(config_sanity(&c).unwrap().severity, Severity::Error);
    c.min_idle = 2;
    assert!(config_sanity(&c).is_none());
    // Every rule of the pool's builder, not a restated subset.
    c.max_connecting = 0;
    let f = config_sanity(&c).unwrap();
    assert!(f.message.contains("max_connecting"), "{}", f.message);
}
