//! The checks: pure functions from what was read (server facts and pool
//! settings, or a service's `/debug/pool` document) to [`Finding`]s.
//!
//! Nothing here does I/O, so every rule is unit-tested below.

use std::time::Duration;

use poolwarden::PoolConfig;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::facts::{Flavor, ServerFacts};
use crate::live::{LiveCheckout, LiveReport};

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
    fn new(
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

    fn num(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Finding {
        self.numbers.0.push((name, value.into()));
        self
    }

    fn secs(self, name: &'static str, d: Duration) -> Finding {
        self.num(name, d.as_secs_f64())
    }

    fn opt_secs(self, name: &'static str, d: Option<Duration>) -> Finding {
        let v = d.map_or(serde_json::Value::Null, |d| d.as_secs_f64().into());
        self.num(name, v)
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
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

fn fmt_opt(d: Option<Duration>) -> String {
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

fn pct(part: u64, whole: u64) -> f64 {
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

/// Every check of `poolwarden doctor URL`: the pool settings `cfg`, used by
/// `processes` processes, against the server's `facts`. Worst first.
pub(crate) fn check_server(facts: &ServerFacts, cfg: &PoolConfig, processes: u32) -> Vec<Finding> {
    let t = facts.server_idle_timeout();
    let name = facts.idle_timeout_name();
    let mut out = Vec::new();
    out.extend(config_sanity(cfg));
    out.push(idle_timeout(cfg, t, name));
    out.push(max_lifetime(cfg, t, name));
    out.extend(session_timeouts(facts));
    out.extend(capacity(facts, cfg, processes));
    out.extend(max_used(facts));
    out.extend(aborted_clients(facts));
    out.extend(aborted_connects(facts));
    out.push(validation(cfg, t, name, pool_learns_idle_timeout(facts)));
    out.push(leak_detection(cfg, t, name));
    out.push(checkout_timeout(cfg));
    out.extend(idle_in_transaction(facts, cfg));
    out.extend(tcp_keepalives(facts));
    out.extend(reset_support(facts));
    out.extend(max_allowed_packet(facts));
    sort_worst_first(&mut out);
    out
}

/// Whether the pool learns the server's idle timeout at connect (then it
/// retires idle connections before the server closes them):
/// `MySqlManager` reads `wait_timeout` by default.
pub(crate) fn pool_learns_idle_timeout(facts: &ServerFacts) -> bool {
    !matches!(facts.flavor, Flavor::Postgres)
}

fn sort_worst_first(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
}

/// Settings the pool's builder would reject: its own rule
/// ([`poolwarden::rules::check_config`]), its own words.
pub(crate) fn config_sanity(cfg: &PoolConfig) -> Option<Finding> {
    let e = poolwarden::rules::check_config(cfg).err()?;
    Some(
        Finding::new(
            Severity::Error,
            "config",
            None,
            format!("the pool refuses to start: {e}"),
        )
        .num("max_size", cfg.max_size)
        .num("min_idle", cfg.min_idle)
        .fix("change the setting named above"),
    )
}

/// F1: `idle_timeout` must be below the server's idle timeout `t`.
pub(crate) fn idle_timeout(cfg: &PoolConfig, t: Option<Duration>, name: &str) -> Finding {
    let check = "idle-timeout";
    let Some(t) = t else {
        return Finding::new(
            Severity::Ok,
            check,
            Some("F1"),
            format!(
                "the server has no idle timeout ({name} off); idle_timeout {}",
                fmt_opt(cfg.idle_timeout)
            ),
        )
        .opt_secs("idle_timeout", cfg.idle_timeout);
    };
    match cfg.idle_timeout {
        Some(i) if i < t => Finding::new(
            Severity::Ok,
            check,
            Some("F1"),
            format!("idle_timeout {} is below {name} {}", fmt_d(i), fmt_d(t)),
        )
        .secs("idle_timeout", i)
        .secs(name_key(name), t),
        other => {
            let what = match other {
                Some(i) => format!(
                    "idle_timeout {} is not below the server's {name} {}: the server closes idle connections first",
                    fmt_d(i),
                    fmt_d(t)
                ),
                None => format!(
                    "idle_timeout is off, but the server closes connections idle for {name} {}",
                    fmt_d(t)
                ),
            };
            Finding::new(Severity::Warn, check, Some("F1"), format!("{what} (the pool caps it at run time once it reads {name}, but the setting says otherwise)"))
                .opt_secs("idle_timeout", other)
                .secs(name_key(name), t)
                .fix(format!(
                    "set idle_timeout below {name}, e.g. idle_timeout = \"{}\"; or raise {name} on the server",
                    fmt_d(below(t))
                ))
        }
    }
}

/// The JSON key for a server timeout's name.
fn name_key(name: &str) -> &'static str {
    if name == "wait_timeout" {
        "wait_timeout"
    } else {
        "idle_session_timeout"
    }
}

/// F1/F12: `max_lifetime` below the server's idle timeout, and set at all.
pub(crate) fn max_lifetime(cfg: &PoolConfig, t: Option<Duration>, name: &str) -> Finding {
    let check = "max-lifetime";
    match (cfg.max_lifetime, t) {
        (None, _) => Finding::new(
            Severity::Info,
            check,
            Some("F12"),
            "max_lifetime is off: connections are never retired, so server-side session growth and DNS or failover changes are never picked up",
        )
        .opt_secs("max_lifetime", None)
        .fix(match t {
            Some(t) => format!("set max_lifetime, e.g. \"{}\" (below {name})", fmt_d(below(t))),
            None => "set max_lifetime, e.g. \"30m\"".to_owned(),
        }),
        (Some(l), Some(t)) if l >= t => Finding::new(
            Severity::Warn,
            check,
            Some("F1"),
            format!(
                "max_lifetime {} is not below the server's {name} {}: a connection that sits idle is closed by the server long before the pool retires it",
                fmt_d(l),
                fmt_d(t)
            ),
        )
        .secs("max_lifetime", l)
        .secs(name_key(name), t)
        .fix(format!(
            "set max_lifetime below {name}, e.g. max_lifetime = \"{}\"; or raise {name} on the server (SET GLOBAL and the server's config file)",
            fmt_d(below(t))
        )),
        (Some(l), Some(t)) => Finding::new(
            Severity::Ok,
            check,
            Some("F12"),
            format!("max_lifetime {} is below {name} {}", fmt_d(l), fmt_d(t)),
        )
        .secs("max_lifetime", l)
        .secs(name_key(name), t),
        (Some(l), None) => Finding::new(
            Severity::Ok,
            check,
            Some("F12"),
            format!("max_lifetime {}", fmt_d(l)),
        )
        .secs("max_lifetime", l),
    }
}

/// F1: the session's `wait_timeout` is not the global one, or interactive
/// clients get another timeout.
pub(crate) fn session_timeouts(facts: &ServerFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    if !facts.flavor.is_mysql() {
        return out;
    }
    if let (Some(s), Some(g)) = (facts.wait_timeout, facts.wait_timeout_global) {
        if s != g {
            out.push(
                Finding::new(
                    Severity::Info,
                    "session-timeout",
                    Some("F1"),
                    format!(
                        "this session's wait_timeout {} differs from the global {}: init_connect or the user's settings change it; a pool's connections get the session value",
                        fmt_d(s),
                        fmt_d(g)
                    ),
                )
                .secs("wait_timeout", s)
                .secs("wait_timeout_global", g),
            );
        }
    }
    if let (Some(i), Some(w)) = (facts.interactive_timeout_global, facts.wait_timeout_global) {
        if i != w {
            out.push(
                Finding::new(
                    Severity::Info,
                    "interactive-timeout",
                    Some("F1"),
                    format!(
                        "interactive_timeout {} differs from wait_timeout {}: clients that connect as interactive (CLIENT_INTERACTIVE, e.g. the mysql shell) get the former; pools connect non-interactive and get wait_timeout",
                        fmt_d(i),
                        fmt_d(w)
                    ),
                )
                .secs("interactive_timeout", i)
                .secs("wait_timeout_global", w),
            );
        }
    }
    out
}

/// F9: `processes × (max_size + max_overflow)` plus what is already
/// connected, against `max_connections`.
pub(crate) fn capacity(facts: &ServerFacts, cfg: &PoolConfig, processes: u32) -> Option<Finding> {
    let check = "capacity";
    let max_conn = facts.max_connections?;
    let reserved = facts.reserved_connections.unwrap_or(0);
    let limit = max_conn.saturating_sub(reserved);
    // The doctor's own connection is one of those connected.
    let others = facts.connected.map_or(0, |c| c.saturating_sub(1));
    let per = u64::from(cfg.max_open());
    let demand = per * u64::from(processes);
    let total = demand + others;
    let limit_words = if reserved > 0 {
        format!("max_connections {max_conn} less {reserved} reserved for superusers = {limit}")
    } else {
        format!("max_connections {max_conn}")
    };
    let demand_words = format!(
        "{processes} process{} × (max_size {} + max_overflow {}) = {demand} connections",
        if processes == 1 { "" } else { "es" },
        cfg.max_size,
        cfg.max_overflow
    );
    let budget = (limit * CAPACITY_WARN_PERCENT / 100).saturating_sub(others);
    let per_process = budget / u64::from(processes.max(1));
    let fix = if per_process == 0 {
        format!(
            "{others} connections already take {CAPACITY_WARN_PERCENT}% of the server's limit or more: run fewer processes, find what holds the others, or raise max_connections on the server"
        )
    } else {
        format!(
            "keep processes × (max_size + max_overflow) within {CAPACITY_WARN_PERCENT}% of the server's limit: with {processes} process{}, max_size + max_overflow of at most {per_process}; or fewer processes; or raise max_connections on the server",
            if processes == 1 { "" } else { "es" }
        )
    };
    let f = |sev, msg: String| {
        Finding::new(sev, check, Some("F9"), msg)
            .num("processes", processes)
            .num("max_size", cfg.max_size)
            .num("max_overflow", cfg.max_overflow)
            .num("demand", demand)
            .num("connected_others", others)
            .num("max_connections", max_conn)
            .num("reserved_connections", reserved)
    };
    Some(if demand > limit {
        f(
            Severity::Error,
            format!("{demand_words}, above {limit_words}: under load the server refuses connections (error 1040 / 53300)"),
        )
        .fix(fix)
    } else if total > limit {
        f(
            Severity::Error,
            format!("{demand_words}, plus {others} already connected = {total}, above {limit_words}: under load the server refuses connections"),
        )
        .fix(fix)
    } else if total * 100 >= limit * CAPACITY_WARN_PERCENT {
        f(
            Severity::Warn,
            format!(
                "{demand_words}, plus {others} already connected = {total}: {:.0}% of {limit_words}, little room for deploys, admin sessions and other services",
                pct(total, limit)
            ),
        )
        .fix(fix)
    } else {
        f(
            Severity::Ok,
            format!(
                "{demand_words}, plus {others} already connected = {total}: {:.0}% of {limit_words}",
                pct(total, limit)
            ),
        )
    })
}

/// F9: the server has reached its connection limit before.
pub(crate) fn max_used(facts: &ServerFacts) -> Option<Finding> {
    let (used, max) = (facts.max_used_connections?, facts.max_connections?);
    if used < max * CAPACITY_WARN_PERCENT / 100 {
        return None;
    }
    let uptime = facts
        .uptime
        .map(|u| format!(" (up {})", fmt_d(Duration::from_secs(u))))
        .unwrap_or_default();
    let (sev, what) = if used >= max {
        (
            Severity::Warn,
            "the server has been at its limit since it started: clients were probably refused (error 1040)",
        )
    } else {
        (Severity::Info, "the server has come close to its limit")
    };
    Some(
        Finding::new(
            sev,
            "max-used",
            Some("F9"),
            format!("Max_used_connections {used} of max_connections {max}{uptime}: {what}"),
        )
        .num("max_used_connections", used)
        .num("max_connections", max)
        .fix("size pools with --processes to see how much of the limit each service takes"),
    )
}

/// F6: `Aborted_clients` relative to `Connections`: connections dropped
/// without a clean close, the signature of leaked checkouts killed by
/// `wait_timeout`.
pub(crate) fn aborted_clients(facts: &ServerFacts) -> Option<Finding> {
    let (aborted, conns) = (facts.aborted_clients?, facts.connections?);
    let check = "aborted-clients";
    let share = pct(aborted, conns);
    let f = |sev, msg: String| {
        Finding::new(sev, check, Some("F6"), msg)
            .num("aborted_clients", aborted)
            .num("connections", conns)
            .num("percent", (share * 10.0).round() / 10.0)
    };
    Some(if aborted == 0 {
        f(
            Severity::Ok,
            format!("Aborted_clients 0 of {conns} connections: every client closed cleanly"),
        )
    } else if aborted >= ABORTED_WARN_MIN && share >= ABORTED_WARN_PERCENT {
        f(
            Severity::Warn,
            format!(
                "Aborted_clients {aborted} of {conns} connections ({share:.1}%): connections dropped without a clean close — typically checkouts held (leaked) until wait_timeout killed them, or processes killed with connections open"
            ),
        )
        .fix("find who holds connections: `poolwarden doctor --live http://SERVICE/debug/pool`; keep leak detection on with leak_threshold below wait_timeout")
    } else {
        f(
            Severity::Info,
            format!(
                "Aborted_clients {aborted} of {conns} connections ({share:.1}%): a few connections ended without a clean close"
            ),
        )
    })
}

/// F11: failed connection attempts (bad credentials, unknown database).
pub(crate) fn aborted_connects(facts: &ServerFacts) -> Option<Finding> {
    let (aborted, conns) = (facts.aborted_connects?, facts.connections?);
    if aborted == 0 {
        return None;
    }
    let share = pct(aborted, conns);
    let (sev, fix) = if aborted >= ABORTED_WARN_MIN && share >= ABORTED_WARN_PERCENT {
        (
            Severity::Warn,
            Some("check the server's error log for the client and reason; fix credentials or database names rather than retrying"),
        )
    } else {
        (Severity::Info, None)
    };
    let mut f = Finding::new(
        sev,
        "aborted-connects",
        Some("F11"),
        format!(
            "Aborted_connects {aborted} of {conns} connection attempts ({share:.1}%) failed: wrong credentials, unknown databases or handshake timeouts"
        ),
    )
    .num("aborted_connects", aborted)
    .num("connections", conns);
    if let Some(fix) = fix {
        f = f.fix(fix);
    }
    Some(f)
}

/// F1/F3: checkout validation, against a short server timeout.
/// `learns`: whether the pool learns `t` at connect
/// ([`pool_learns_idle_timeout`]).
pub(crate) fn validation(
    cfg: &PoolConfig,
    t: Option<Duration>,
    name: &str,
    learns: bool,
) -> Finding {
    let check = "validation";
    if cfg.skip_validation {
        return match t {
            Some(t) if t < SHORT_SERVER_TIMEOUT => Finding::new(
                Severity::Warn,
                check,
                Some("F1/F3"),
                format!(
                    "skip_validation is on and the server's {name} is only {}: a connection the server has closed (timeout, KILL, restart, proxy cut) is handed out without a ping",
                    fmt_d(t)
                ),
            )
            .num("skip_validation", true)
            .secs(name_key(name), t)
            .fix(format!(
                "set skip_validation = false (connections used within validation_bypass {} are still handed out without a ping)",
                fmt_d(cfg.validation_bypass)
            )),
            _ => Finding::new(
                Severity::Info,
                check,
                Some("F3"),
                "skip_validation is on: a connection killed by KILL, a restart, a proxy or a NAT is handed out without a ping",
            )
            .num("skip_validation", true)
            .opt_secs(name_key(name), t)
            .fix("set skip_validation = false unless the server and network never drop connections"),
        };
    }
    if let Some(t) = t {
        if poolwarden::rules::idle_close_reaches_borrower(cfg, t, learns) {
            return Finding::new(
                Severity::Warn,
                check,
                Some("F1"),
                format!(
                    "validation_bypass {} is not below {name} {}: a connection the server closed for idleness is handed out without a ping",
                    fmt_d(cfg.validation_bypass),
                    fmt_d(t)
                ),
            )
            .secs("validation_bypass", cfg.validation_bypass)
            .secs(name_key(name), t)
            .fix("set validation_bypass to the default \"500ms\"");
        }
    }
    Finding::new(
        Severity::Ok,
        check,
        Some("F3"),
        format!(
            "checkouts ping connections idle longer than {}",
            fmt_d(cfg.validation_bypass)
        ),
    )
    .num("skip_validation", false)
    .secs("validation_bypass", cfg.validation_bypass)
}

/// F6: leak detection on, with a threshold below the server's idle timeout.
pub(crate) fn leak_detection(cfg: &PoolConfig, t: Option<Duration>, name: &str) -> Finding {
    let check = "leak-detection";
    match (cfg.leak_threshold, t) {
        (None, _) => Finding::new(
            Severity::Warn,
            check,
            Some("F6"),
            "leak detection is off (leak_threshold unset): a checkout that is never returned goes unreported until the server's timeout kills its connection — the origin incident",
        )
        .opt_secs("leak_threshold", None)
        .fix(match t {
            Some(t) if t <= Duration::from_secs(30) => {
                format!("set leak_threshold, e.g. \"{}\" (below {name})", fmt_d(below(t)))
            }
            _ => "set leak_threshold, e.g. \"30s\"".to_owned(),
        }),
        (Some(l), Some(t)) if l >= t => Finding::new(
            Severity::Warn,
            check,
            Some("F6"),
            format!(
                "leak_threshold {} is not below the server's {name} {}: a leaked connection is killed by the server before it is reported",
                fmt_d(l),
                fmt_d(t)
            ),
        )
        .secs("leak_threshold", l)
        .secs(name_key(name), t)
        .fix(format!("set leak_threshold below {name}, e.g. \"{}\"", fmt_d(below(t) / 2))),
        (Some(l), _) => Finding::new(
            Severity::Ok,
            check,
            Some("F6"),
            format!(
                "checkouts held longer than {} are reported with their location and label",
                fmt_d(l)
            ),
        )
        .secs("leak_threshold", l),
    }
}

/// F7: a long checkout timeout hides exhaustion behind callers' timeouts.
pub(crate) fn checkout_timeout(cfg: &PoolConfig) -> Finding {
    let c = cfg.checkout_timeout;
    if c > LONG_CHECKOUT_TIMEOUT {
        Finding::new(
            Severity::Warn,
            "checkout-timeout",
            Some("F7"),
            format!(
                "checkout_timeout {} is above {}: when the pool is exhausted requests hang that long, and the caller's own timeout fires first, hiding the pool's error that names the holders",
                fmt_d(c),
                fmt_d(LONG_CHECKOUT_TIMEOUT)
            ),
        )
        .secs("checkout_timeout", c)
        .fix("set checkout_timeout to a few seconds (default \"10s\"), below the request timeout")
    } else {
        Finding::new(
            Severity::Ok,
            "checkout-timeout",
            Some("F7"),
            format!("checkout_timeout {}", fmt_d(c)),
        )
        .secs("checkout_timeout", c)
    }
}

/// Postgres, F6: `idle_in_transaction_session_timeout` kills checkouts that
/// sit inside a transaction.
pub(crate) fn idle_in_transaction(facts: &ServerFacts, cfg: &PoolConfig) -> Option<Finding> {
    let t = facts.idle_in_transaction_session_timeout?;
    if t.is_zero() {
        return Some(Finding::new(
            Severity::Info,
            "idle-in-transaction",
            Some("F6"),
            "idle_in_transaction_session_timeout is off: a checkout left idle inside a transaction holds its locks until it is returned",
        ).secs("idle_in_transaction_session_timeout", t));
    }
    let f = Finding::new(
        Severity::Info,
        "idle-in-transaction",
        Some("F6"),
        format!(
            "idle_in_transaction_session_timeout {}: the server kills a checkout left idle inside a transaction after that long",
            fmt_d(t)
        ),
    )
    .secs("idle_in_transaction_session_timeout", t);
    Some(match cfg.leak_threshold {
        Some(l) if l >= t => Finding {
            severity: Severity::Warn,
            message: format!(
                "{}; leak_threshold {} is not below it, so such a leak is killed before it is reported",
                f.message,
                fmt_d(l)
            ),
            ..f
        }
        .secs("leak_threshold", l)
        .fix(format!("set leak_threshold below {}", fmt_d(t))),
        _ => f,
    })
}

/// Postgres, F10: server-side TCP keepalive.
pub(crate) fn tcp_keepalives(facts: &ServerFacts) -> Option<Finding> {
    let t = facts.tcp_keepalives_idle?;
    Some(
        Finding::new(
            Severity::Info,
            "tcp-keepalive",
            Some("F10"),
            if t.is_zero() {
                "tcp_keepalives_idle uses the OS default (often 2h): the server notices a vanished client late".to_owned()
            } else {
                format!("tcp_keepalives_idle {}", fmt_d(t))
            },
        )
        .secs("tcp_keepalives_idle", t),
    )
}

/// F13: whether a full session reset is available without reconnecting.
pub(crate) fn reset_support(facts: &ServerFacts) -> Option<Finding> {
    let supported = facts.reset_connection?;
    let check = "session-reset";
    Some(match (facts.flavor, supported) {
        (Flavor::Postgres, _) => Finding::new(
            Severity::Ok,
            check,
            Some("F13"),
            "DISCARD ALL resets a returned session",
        ),
        (_, true) => Finding::new(
            Severity::Ok,
            check,
            Some("F13"),
            "COM_RESET_CONNECTION supported: a returned session is reset in one round trip",
        )
        .num("reset_connection", true),
        (_, false) => Finding::new(
            Severity::Info,
            check,
            Some("F13"),
            format!(
                "{} {} has no COM_RESET_CONNECTION (MySQL >= 5.7.3, MariaDB >= 10.2.4): a full reset falls back to COM_CHANGE_USER or a ROLLBACK-only reset",
                facts.flavor.product(),
                facts.version
            ),
        )
        .num("reset_connection", false)
        .fix("upgrade the server, or use the rollback reset policy and avoid session state"),
    })
}

/// Informational: the message size limit, the origin incident's red herring.
pub(crate) fn max_allowed_packet(facts: &ServerFacts) -> Option<Finding> {
    let n = facts.max_allowed_packet?;
    Some(
        Finding::new(
            Severity::Info,
            "max-allowed-packet",
            None,
            format!(
                "max_allowed_packet {}: larger statements or rows fail (\"packet too big\", or \"server has gone away\" on old clients) — a size limit, not a pool problem",
                fmt_bytes(n)
            ),
        )
        .num("max_allowed_packet", n),
    )
}

// ---------------------------------------------------------------- live ---

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
fn who(c: &LiveCheckout) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveStatus;

    const MIN: u64 = 60;

    fn mysql(wait: u64) -> ServerFacts {
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

    fn cfg() -> PoolConfig {
        PoolConfig::default()
    }

    fn d(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn find<'a>(fs: &'a [Finding], check: &str) -> &'a Finding {
        fs.iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} finding in {fs:#?}"))
    }

    // ---- overall

    #[test]
    fn defaults_against_a_default_server_are_clean() {
        let fs = check_server(&mysql(28800), &cfg(), 1);
        assert!(worst(&fs) <= Severity::Info, "{fs:#?}");
        assert_eq!(find(&fs, "idle-timeout").severity, Severity::Ok);
        assert_eq!(find(&fs, "max-lifetime").severity, Severity::Ok);
        assert_eq!(find(&fs, "capacity").severity, Severity::Ok);
        assert_eq!(find(&fs, "leak-detection").severity, Severity::Ok);
    }

    #[test]
    fn findings_come_worst_first() {
        let mut c = cfg();
        c.leak_threshold = None;
        let fs = check_server(&mysql(60), &c, 50);
        let sev: Vec<_> = fs.iter().map(|f| f.severity).collect();
        let mut sorted = sev.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(sev, sorted);
        assert_eq!(fs[0].severity, Severity::Error);
    }

    #[test]
    fn worst_of_nothing_is_ok() {
        assert_eq!(worst(&[]), Severity::Ok);
    }

    // ---- config sanity

    #[test]
    fn zero_max_size_is_an_error() {
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

    // ---- Postgres specifics

    #[test]
    fn idle_in_transaction_timeout_against_leak_threshold() {
        let mut facts = mysql(0);
        facts.flavor = Flavor::Postgres;
        assert!(idle_in_transaction(&facts, &cfg()).is_none());
        facts.idle_in_transaction_session_timeout = Some(Duration::ZERO);
        assert_eq!(
            idle_in_transaction(&facts, &cfg()).unwrap().severity,
            Severity::Info
        );
        facts.idle_in_transaction_session_timeout = Some(d(MIN));
        assert_eq!(
            idle_in_transaction(&facts, &cfg()).unwrap().severity,
            Severity::Info
        );
        facts.idle_in_transaction_session_timeout = Some(d(20));
        let f = idle_in_transaction(&facts, &cfg()).unwrap();
        assert_eq!(f.severity, Severity::Warn);
        assert_eq!(
            f.numbers.get("leak_threshold"),
            Some(&serde_json::json!(30.0))
        );
    }

    #[test]
    fn tcp_keepalive_is_info() {
        let mut facts = mysql(0);
        assert!(tcp_keepalives(&facts).is_none());
        facts.tcp_keepalives_idle = Some(Duration::ZERO);
        let f = tcp_keepalives(&facts).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("OS default"));
    }

    #[test]
    fn postgres_idle_session_timeout_drives_f1() {
        let mut facts = mysql(0);
        facts.flavor = Flavor::Postgres;
        facts.wait_timeout = None;
        facts.idle_session_timeout = Some(d(5 * MIN));
        let fs = check_server(&facts, &cfg(), 1);
        let f = find(&fs, "idle-timeout");
        assert_eq!(f.severity, Severity::Warn);
        assert!(
            f.message.contains("idle_session_timeout 5m"),
            "{}",
            f.message
        );
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
}
