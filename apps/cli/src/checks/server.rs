//! The server's own state and limits: sessions, capacity, aborted
//! connections, reset support (F1, F6, F9, F11, F13); the list of checks.

use std::time::Duration;

use poolwarden::PoolConfig;

use super::*;
use crate::facts::{Flavor, ServerFacts};

/// Every check of `poolwarden doctor URL`: the pool settings `cfg`, used by
/// `processes` processes, with the manager's `command_timeout` (checked
/// against PostgreSQL's `statement_timeout`), against the server's `facts`.
/// Worst first.
pub(crate) fn check_server(
    facts: &ServerFacts,
    cfg: &PoolConfig,
    processes: u32,
    command_timeout: Option<Duration>,
) -> Vec<Finding> {
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
    // Whether the pool learns the server's idle timeout at connect
    // (`MySqlManager`: `wait_timeout`; `PgManager`: `idle_session_timeout`):
    // what each manager does by default, as its getter says.
    let learns = match facts.flavor {
        Flavor::Postgres => postgres_manager_defaults().configured_discover_server_timeout(),
        Flavor::MySql | Flavor::MariaDb => {
            mysql_manager_defaults().configured_discover_server_timeout()
        }
    };
    out.push(validation(cfg, t, name, learns));
    out.push(leak_detection(cfg, t, name));
    out.push(checkout_timeout(cfg));
    if facts.flavor == Flavor::Postgres {
        out.extend(idle_in_transaction(facts, cfg));
        out.push(statement_timeout(facts, command_timeout));
        out.extend(tcp_keepalives(facts));
    }
    out.extend(reset_support(facts));
    out.extend(max_allowed_packet(facts));
    sort_worst_first(&mut out);
    out
}

/// A MySQL/MariaDB manager as the application builds it by default (see
/// [`postgres_manager_defaults`]).
pub(crate) fn mysql_manager_defaults() -> poolwarden_mysql::MySqlManager {
    poolwarden_mysql::MySqlManager::new(mysql_async::OptsBuilder::default())
}

pub(crate) fn sort_worst_first(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
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
