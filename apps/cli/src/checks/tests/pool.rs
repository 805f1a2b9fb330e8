//! Pool settings against server timeouts.

use super::*;

// ---- F1 idle timeout

#[test]
fn idle_timeout_below_wait_timeout_is_ok() {
    let f = idle_timeout(&cfg(), Some(d(8 * 3600)), "wait_timeout");
    assert_eq!(f.severity, Severity::Ok);
    assert_eq!(f.failure, Some("F1"));
}

#[test]
fn idle_timeout_above_wait_timeout_warns_with_numbers_and_fix() {
    let f = idle_timeout(&cfg(), Some(d(MIN)), "wait_timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F1"));
    assert_eq!(
        f.numbers.get("idle_timeout"),
        Some(&serde_json::json!(600.0))
    );
    assert_eq!(
        f.numbers.get("wait_timeout"),
        Some(&serde_json::json!(60.0))
    );
    assert!(
        f.message.contains("10m") && f.message.contains("1m"),
        "{}",
        f.message
    );
    assert!(f.fix.as_deref().unwrap().contains("\"48s\""), "{:?}", f.fix);
}

#[test]
fn idle_timeout_equal_to_wait_timeout_warns() {
    let mut c = cfg();
    c.idle_timeout = Some(d(MIN));
    assert_eq!(
        idle_timeout(&c, Some(d(MIN)), "wait_timeout").severity,
        Severity::Warn
    );
}

#[test]
fn idle_timeout_off_with_a_server_timeout_warns() {
    let mut c = cfg();
    c.idle_timeout = None;
    let f = idle_timeout(&c, Some(d(300)), "wait_timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("off"));
    assert_eq!(
        f.numbers.get("idle_timeout"),
        Some(&serde_json::Value::Null)
    );
}

#[test]
fn idle_timeout_without_server_timeout_is_ok() {
    let mut c = cfg();
    c.idle_timeout = None;
    let f = idle_timeout(&c, None, "idle_session_timeout");
    assert_eq!(f.severity, Severity::Ok);
    assert!(f.message.contains("idle_session_timeout off"));
}

// ---- F1 / F12 lifetime

#[test]
fn lifetime_above_wait_timeout_warns_f1() {
    let mut c = cfg();
    c.max_lifetime = Some(d(30 * MIN));
    let f = max_lifetime(&c, Some(d(MIN)), "wait_timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F1"));
    assert_eq!(
        f.numbers.get("max_lifetime"),
        Some(&serde_json::json!(1800.0))
    );
    assert!(f.message.contains("30m"));
    assert!(f.fix.unwrap().contains("48s"));
}

#[test]
fn lifetime_below_wait_timeout_is_ok() {
    let f = max_lifetime(&cfg(), Some(d(3600)), "wait_timeout");
    assert_eq!(f.severity, Severity::Ok);
    let f = max_lifetime(&cfg(), None, "idle_session_timeout");
    assert_eq!(f.severity, Severity::Ok);
}

#[test]
fn lifetime_off_is_info_f12() {
    let mut c = cfg();
    c.max_lifetime = None;
    for t in [None, Some(d(MIN))] {
        let f = max_lifetime(&c, t, "wait_timeout");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.failure, Some("F12"));
    }
}

// ---- F1/F3 validation

#[test]
fn validation_on_is_ok() {
    let f = validation(&cfg(), Some(d(60)), "wait_timeout", true);
    assert_eq!(f.severity, Severity::Ok);
}

#[test]
fn skip_validation_with_short_server_timeout_warns() {
    let mut c = cfg();
    c.skip_validation = true;
    let f = validation(&c, Some(d(9 * MIN)), "wait_timeout", true);
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F1/F3"));
    assert_eq!(
        f.numbers.get("wait_timeout"),
        Some(&serde_json::json!(540.0))
    );
}

#[test]
fn skip_validation_with_long_or_no_server_timeout_is_info() {
    let mut c = cfg();
    c.skip_validation = true;
    assert_eq!(
        validation(&c, Some(d(10 * MIN)), "wait_timeout", true).severity,
        Severity::Info
    );
    assert_eq!(
        validation(&c, None, "idle_session_timeout", false).severity,
        Severity::Info
    );
}

#[test]
fn bypass_window_longer_than_server_timeout_warns_only_if_the_pool_cannot_know_it() {
    let mut c = cfg();
    c.validation_bypass = d(120);
    let f = validation(&c, Some(d(60)), "idle_session_timeout", false);
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F1"));
    // What the pool does: knowing wait_timeout, it retires connections
    // idle past poolwarden::rules::server_limit, whatever the window.
    let f = validation(&c, Some(d(60)), "wait_timeout", true);
    assert_eq!(f.severity, Severity::Ok, "{}", f.message);
}

// ---- F6 leak detection

#[test]
fn leak_detection_off_warns() {
    let mut c = cfg();
    c.leak_threshold = None;
    let f = leak_detection(&c, Some(d(28800)), "wait_timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F6"));
    assert!(f.fix.unwrap().contains("30s"));
}

#[test]
fn leak_threshold_above_server_timeout_warns() {
    let mut c = cfg();
    c.leak_threshold = Some(d(10 * MIN));
    let f = leak_detection(&c, Some(d(MIN)), "wait_timeout");
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("10m") && f.message.contains("1m"));
}

#[test]
fn leak_detection_on_is_ok() {
    assert_eq!(
        leak_detection(&cfg(), Some(d(MIN)), "wait_timeout").severity,
        Severity::Ok
    );
    assert_eq!(
        leak_detection(&cfg(), None, "wait_timeout").severity,
        Severity::Ok
    );
}

// ---- F7 checkout timeout

#[test]
fn long_checkout_timeout_warns() {
    let mut c = cfg();
    assert_eq!(checkout_timeout(&c).severity, Severity::Ok);
    c.checkout_timeout = d(30);
    assert_eq!(
        checkout_timeout(&c).severity,
        Severity::Ok,
        "30 s is the limit"
    );
    c.checkout_timeout = d(31);
    let f = checkout_timeout(&c);
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.failure, Some("F7"));
}
