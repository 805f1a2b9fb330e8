//! What a check produces ([`Finding`], [`Severity`]), the formatting the
//! checks share, and the doctor's own thresholds.

use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// How bad a finding is. Ordered: `Ok < Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Checked and fine.
    Ok,
    /// Worth knowing; nothing to fix.
    Info,
    /// A setting or a state that will hurt; fix it.
    Warn,
    /// Will fail now or under load.
    Error,
}

impl Severity {
    /// The word shown in the table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// The numbers that triggered a finding, in the order they were added.
/// Durations are seconds; serialised as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Numbers(Vec<(&'static str, serde_json::Value)>);

impl Numbers {
    /// The value named `name`, if any.
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Serialize for Numbers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Finding {
    /// How bad.
    pub(crate) severity: Severity,
    /// The check's short name, e.g. `idle-timeout`.
    pub(crate) check: &'static str,
    /// The failure mode(s) of `docs/failure-modes.md` it relates to, e.g. `F1`.
    pub(crate) failure: Option<&'static str>,
    /// What was found, with the numbers in words.
    pub(crate) message: String,
    /// The numbers that triggered it.
    pub(crate) numbers: Numbers,
    /// What to do about it.
    pub(crate) fix: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        severity: Severity,
        check: &'static str,
        failure: Option<&'static str>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            check,
            failure,
            message: message.into(),
            numbers: Numbers::default(),
            fix: None,
        }
    }

    pub(crate) fn num(
        mut self,
        name: &'static str,
        value: impl Into<serde_json::Value>,
    ) -> Finding {
        self.numbers.0.push((name, value.into()));
        self
    }

    pub(crate) fn secs(self, name: &'static str, d: Duration) -> Finding {
        self.num(name, d.as_secs_f64())
    }

    pub(crate) fn opt_secs(self, name: &'static str, d: Option<Duration>) -> Finding {
        let v = d.map_or(serde_json::Value::Null, |d| d.as_secs_f64().into());
        self.num(name, v)
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// The worst severity among `findings` (`Ok` when empty).
pub(crate) fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// A duration for people: `30m`, `1h 30m`, `48s`.
pub(crate) fn fmt_d(d: Duration) -> String {
    // Whole milliseconds are enough for anything a pool is configured with.
    let d = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(d).to_string()
}

pub(crate) fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "off".to_owned(), fmt_d)
}

/// A suggested value safely below a server timeout: 80 % of it, whole
/// seconds, at least one second.
pub(crate) fn below(t: Duration) -> Duration {
    Duration::from_secs((t.as_secs() * 4 / 5).max(1))
}

/// Bytes for people: `16 MiB`.
pub(crate) fn fmt_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    if n >= GIB && n % GIB == 0 {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

pub(crate) fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A server timeout is "short" below this: validation must stay on (F1/F3).
pub(crate) const SHORT_SERVER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A checkout timeout above this hides exhaustion behind callers' timeouts (F7).
pub(crate) const LONG_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Share of `max_connections` above which the pools' demand is a warning (F9).
pub(crate) const CAPACITY_WARN_PERCENT: u64 = 80;
/// `Aborted_clients` per connection above which it is a warning (F6)...
pub(crate) const ABORTED_WARN_PERCENT: f64 = 5.0;
/// ...once there are at least this many.
pub(crate) const ABORTED_WARN_MIN: u64 = 10;
/// A holder is "near" the server's idle timeout from this fraction of it
/// (F6): the pool's own threshold for its louder leak report.
pub(crate) const NEAR_TIMEOUT_FRACTION: f64 = poolwarden::rules::NEAR_SERVER_TIMEOUT;
