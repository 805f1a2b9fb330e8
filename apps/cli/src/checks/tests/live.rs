//! `--live` documents.

use super::*;
use crate::live::{LiveCheckout, LiveReport};

// ---- live

fn checkout(held: f64, timeout: Option<f64>, leak: bool) -> LiveCheckout {
    LiveCheckout {
        id: 7,
        connection_id: 3,
        location: "src/jobs/report.rs:88:5".to_owned(),
        label: Some("nightly-report".to_owned()),
        held_for: held,
        connection_age: held + 1.0,
        server_idle_timeout: timeout,
        leak_reported: leak,
    }
}

fn report(checkouts: Vec<LiveCheckout>) -> LiveReport {
    LiveReport {
        pool: "main".to_owned(),
        status: LiveStatus {
            max_size: 10,
            max_open: 10,
            in_use: checkouts.len() as u32,
            ..LiveStatus::default()
        },
        checkouts,
        config: Some(cfg()),
    }
}

#[test]
fn holder_past_timeout_warns_naming_location_and_label() {
    let f = holder(&checkout(75.0, Some(60.0), false)).unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F6"));
    assert!(
        f.message
            .contains("src/jobs/report.rs:88:5 [nightly-report]"),
        "{}",
        f.message
    );
    assert!(f.message.contains("past"), "{}", f.message);
    assert_eq!(f.numbers.get("held_for"), Some(&serde_json::json!(75.0)));
}

#[test]
fn holder_near_timeout_warns_from_two_thirds() {
    assert!(holder(&checkout(39.0, Some(60.0), false)).is_none());
    let f = holder(&checkout(40.0, Some(60.0), false)).unwrap();
    assert!(f.message.contains("near"), "{}", f.message);
    assert_eq!(f.severity, Severity::Warn);
}

#[test]
fn holder_leak_reported_warns_without_timeout() {
    let f = holder(&checkout(45.0, None, true)).unwrap();
    assert!(f.message.contains("leak"));
    let mut c = checkout(45.0, None, true);
    c.label = None;
    let f = holder(&c).unwrap();
    assert!(
        f.message.contains("at src/jobs/report.rs:88:5:"),
        "{}",
        f.message
    );
    assert!(holder(&checkout(45.0, None, false)).is_none());
    assert!(
        holder(&checkout(45.0, Some(0.0), false)).is_none(),
        "0 means unknown"
    );
}

#[test]
fn healthy_live_pool_is_ok() {
    let fs = check_live(&report(vec![checkout(1.0, Some(60.0), false)]));
    assert_eq!(worst(&fs), Severity::Ok, "{fs:#?}");
    assert_eq!(
        find(&fs, "holders").numbers.get("checkouts"),
        Some(&serde_json::json!(1))
    );
}

#[test]
fn exhausted_pool_warns_with_longest_holder() {
    let mut r = report(vec![checkout(12.0, None, false)]);
    r.status.in_use = 10;
    assert_eq!(exhaustion(&r).unwrap().severity, Severity::Info);
    r.status.waiting = 4;
    let f = exhaustion(&r).unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message
            .contains("10/10 in use, 4 waiting; longest held 12s at src/jobs/report.rs:88:5"),
        "{}",
        f.message
    );
    r.status.in_use = 9;
    assert!(exhaustion(&r).is_none());
}

#[test]
fn live_timeouts_leaks_and_closes() {
    let mut r = report(vec![]);
    assert!(timeouts(&r).is_none() && leaks_so_far(&r).is_none() && closes(&r).is_empty());
    r.status.timeouts = 3;
    r.status.leaks = 1;
    r.status.closed.insert("closed".to_owned(), 2);
    r.status.closed.insert("lifetime".to_owned(), 9);
    assert_eq!(timeouts(&r).unwrap().severity, Severity::Warn);
    assert_eq!(leaks_so_far(&r).unwrap().severity, Severity::Info);
    let cs = closes(&r);
    assert_eq!(cs.len(), 1, "lifetime closes are routine: {cs:#?}");
    assert_eq!(cs[0].failure, Some("F3"));
}

#[test]
fn live_config_checks_use_the_learned_server_timeout() {
    let mut r = report(vec![checkout(1.0, Some(20.0), false)]);
    // leak_threshold 30s >= the server's 20s
    let fs = check_live(&r);
    assert_eq!(find(&fs, "leak-detection").severity, Severity::Warn);
    r.config = None;
    assert!(check_live(&r).iter().all(|f| f.check != "leak-detection"));
}
