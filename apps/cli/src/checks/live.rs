//! A running service's `/debug/pool` document: holders, exhaustion,
//! timeouts, leaks, closes (F6, F7).

use std::time::Duration;

use super::*;

use crate::live::{LiveCheckout, LiveReport};

/// Every check of `poolwarden doctor --live URL` on a service's
/// `/debug/pool` document. Worst first.
pub(crate) fn check_live(report: &LiveReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut flagged = 0;
    for c in &report.checkouts {
        if let Some(f) = holder(c) {
            flagged += 1;
            out.push(f);
        }
    }
    if flagged == 0 {
        out.push(
            Finding::new(
                Severity::Ok,
                "holders",
                Some("F6"),
                format!(
                    "{} checkout{} live, none near the server's idle timeout or reported as a leak",
                    report.checkouts.len(),
                    if report.checkouts.len() == 1 { "" } else { "s" }
                ),
            )
            .num("checkouts", report.checkouts.len()),
        );
    }
    out.extend(exhaustion(report));
    out.extend(timeouts(report));
    out.extend(leaks_so_far(report));
    out.extend(closes(report));
    if let Some(cfg) = &report.config {
        // The server's timeout as the pool learned it, from any checkout.
        let t = report
            .checkouts
            .iter()
            .filter_map(|c| c.server_idle_timeout)
            .filter(|s| *s > 0.0)
            .filter_map(|s| Duration::try_from_secs_f64(s).ok())
            .min();
        let f = leak_detection(cfg, t, "server idle timeout");
        if f.severity > Severity::Ok {
            out.push(f);
        }
        let f = checkout_timeout(cfg);
        if f.severity > Severity::Ok {
            out.push(f);
        }
        // The timeout comes from the pool's own report: it knows it.
        let f = validation(cfg, t, "server idle timeout", t.is_some());
        if f.severity > Severity::Ok {
            out.push(f);
        }
    }
    sort_worst_first(&mut out);
    out
}

/// Where and who, for messages: `src/jobs.rs:88:5 [nightly-report]`.
pub(crate) fn who(c: &LiveCheckout) -> String {
    match &c.label {
        Some(l) if !l.is_empty() => format!("{} [{l}]", c.location),
        _ => c.location.clone(),
    }
}

/// Seconds for people; whole seconds from 10 s up (`5m 12s`, `1.5s` reads
/// `1s 500ms`).
pub(crate) fn secs_str(s: f64) -> String {
    let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
    if s >= 10.0 {
        fmt_d(Duration::from_secs(s.round() as u64))
    } else {
        fmt_d(Duration::from_secs_f64(s))
    }
}

/// F6: one checkout held near or past the server's idle timeout, or
/// reported as a leak.
pub(crate) fn holder(c: &LiveCheckout) -> Option<Finding> {
    let t = c.server_idle_timeout.filter(|t| *t > 0.0);
    let place = format!(
        "checkout #{} (connection {}) at {}",
        c.id,
        c.connection_id,
        who(c)
    );
    let mut parts = Vec::new();
    if let Some(t) = t {
        if c.held_for >= t {
            parts.push(format!(
                "held {}, past the server's idle timeout {}: if it sat idle the server has closed it, and its next query fails",
                secs_str(c.held_for),
                secs_str(t)
            ));
        } else if c.held_for >= t * NEAR_TIMEOUT_FRACTION {
            parts.push(format!(
                "held {}, near the server's idle timeout {} ({:.0}%)",
                secs_str(c.held_for),
                secs_str(t),
                c.held_for * 100.0 / t
            ));
        }
    }
    if c.leak_reported {
        if parts.is_empty() {
            parts.push(format!(
                "held {}, reported as a leak (past leak_threshold)",
                secs_str(c.held_for)
            ));
        } else {
            parts.push("reported as a leak".to_owned());
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        Severity::Warn,
        "holder",
        Some("F6"),
        format!("{place}: {}", parts.join("; ")),
    )
    .num("id", c.id)
    .num("connection_id", c.connection_id)
    .num("location", c.location.clone())
    .num(
        "label",
        c.label
            .clone()
            .map_or(serde_json::Value::Null, serde_json::Value::from),
    )
    .num("held_for", c.held_for)
    .num(
        "server_idle_timeout",
        t.map_or(serde_json::Value::Null, serde_json::Value::from),
    )
    .num("leak_reported", c.leak_reported);
    f = f.fix(format!(
        "look at {}: return the connection (drop the guard) as soon as the work is done; do not keep it in a background task, a struct or across unrelated awaits",
        c.location
    ));
    Some(f)
}

/// F7: every connection in use and checkouts waiting.
pub(crate) fn exhaustion(report: &LiveReport) -> Option<Finding> {
    let s = &report.status;
    if s.max_open == 0 || s.in_use < s.max_open {
        return None;
    }
    let longest = report
        .checkouts
        .iter()
        .max_by(|a, b| a.held_for.total_cmp(&b.held_for))
        .map(|c| format!("; longest held {} at {}", secs_str(c.held_for), who(c)))
        .unwrap_or_default();
    let (sev, what) = if s.waiting > 0 {
        (
            Severity::Warn,
            format!(
                "pool exhausted: {}/{} in use, {} waiting{longest}",
                s.in_use, s.max_open, s.waiting
            ),
        )
    } else {
        (
            Severity::Info,
            format!(
                "pool at capacity: {}/{} in use, none waiting{longest}",
                s.in_use, s.max_open
            ),
        )
    };
    let mut f = Finding::new(sev, "exhaustion", Some("F7"), what)
        .num("in_use", s.in_use)
        .num("max_open", s.max_open)
        .num("waiting", s.waiting);
    if sev == Severity::Warn {
        f = f.fix("look at the longest holders first; raise max_size/max_overflow only if they are legitimate (and check the server's max_connections: `poolwarden doctor DB_URL --processes N`)");
    }
    Some(f)
}

/// F7: checkouts that timed out since the pool started.
pub(crate) fn timeouts(report: &LiveReport) -> Option<Finding> {
    let n = report.status.timeouts;
    (n > 0).then(|| {
        Finding::new(
            Severity::Warn,
            "timeouts",
            Some("F7"),
            format!(
                "{n} checkout{} timed out since the pool started (of {} successful)",
                if n == 1 { "" } else { "s" },
                report.status.checkouts
            ),
        )
        .num("timeouts", n)
        .num("checkouts", report.status.checkouts)
        .fix("the pool's timeout errors name the longest holders: look them up in the service's logs")
    })
}

/// F6: checkouts reported as leaks since the pool started.
pub(crate) fn leaks_so_far(report: &LiveReport) -> Option<Finding> {
    let n = report.status.leaks;
    (n > 0).then(|| {
        Finding::new(
            Severity::Info,
            "leaks",
            Some("F6"),
            format!(
                "{n} checkout{} reported as leaks since the pool started (the service's log has their locations)",
                if n == 1 { " was" } else { "s were" }
            ),
        )
        .num("leaks", n)
    })
}

/// Closes by reason, where a reason points at a failure mode.
pub(crate) fn closes(report: &LiveReport) -> Vec<Finding> {
    const NOTABLE: [(&str, &str, &str); 7] = [
        ("closed", "F3", "closed by the server or the network"),
        ("validation_failed", "F1/F3", "failed the checkout ping"),
        (
            "server_idle_timeout",
            "F1",
            "retired before the server's idle timeout",
        ),
        ("reset_failed", "F4", "failed the reset on return"),
        ("corrupt", "F5", "returned mid-protocol"),
        ("stale", "F2", "invalidated after a disconnect"),
        ("forked", "F8", "dropped after a fork"),
    ];
    NOTABLE
        .iter()
        .filter_map(|(reason, fid, words)| {
            let n = report.status.closed.get(*reason).copied().unwrap_or(0);
            (n > 0).then(|| {
                Finding::new(
                    Severity::Info,
                    "closes",
                    Some(fid),
                    format!(
                        "{n} connection{} {words} ({reason})",
                        if n == 1 { "" } else { "s" }
                    ),
                )
                .num(reason, n)
            })
        })
        .collect()
}
