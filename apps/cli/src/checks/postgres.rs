//! PostgreSQL's own timeouts against the pool and its manager: idle in a
//! transaction (F6), `statement_timeout` against the manager's
//! `command_timeout` (F10), and TCP keepalives on both ends (F10). The
//! server idle timeout (`idle_session_timeout`) goes through the same
//! checks as MySQL's `wait_timeout` (`pool.rs`).

use std::time::Duration;

use poolwarden::{ErrorClass, PoolConfig};
use tokio_postgres::error::SqlState;

use super::*;
use crate::facts::ServerFacts;

/// F6: `idle_in_transaction_session_timeout` kills checkouts that sit
/// inside a transaction.
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
    // When the manager warns: its owner's fraction.
    let warn_after = t.mul_f64(poolwarden_postgres::IDLE_IN_TRANSACTION_WARN_FRACTION);
    let f = Finding::new(
        Severity::Info,
        "idle-in-transaction",
        Some("F6"),
        format!(
            "idle_in_transaction_session_timeout {}: the server closes a session left idle inside a transaction after that long (the manager logs a warning for a borrower idle in a transaction for {} of it, {})",
            fmt_d(t),
            fmt_fraction(poolwarden_postgres::IDLE_IN_TRANSACTION_WARN_FRACTION),
            fmt_d(warn_after)
        ),
    )
    .secs("idle_in_transaction_session_timeout", t)
    .secs("warns_idle_in_transaction_after", warn_after);
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

/// F10: what ends a long command first, the server's `statement_timeout`
/// or the manager's `command_timeout` (`PgManager::command_timeout`), and
/// whether anything bounds a command on a frozen server.
pub(crate) fn statement_timeout(facts: &ServerFacts, command_timeout: Option<Duration>) -> Finding {
    let check = "statement-timeout";
    let server = facts.statement_timeout.filter(|s| !s.is_zero());
    let server_words = server.map_or_else(
        || "statement_timeout is off".to_owned(),
        |s| format!("statement_timeout {}", fmt_d(s)),
    );
    let with_numbers = |f: Finding| {
        f.opt_secs("statement_timeout", facts.statement_timeout)
            .opt_secs("command_timeout", command_timeout)
    };
    let Some(c) = command_timeout else {
        return with_numbers(Finding::new(
            Severity::Warn,
            check,
            Some("F10"),
            format!(
                "command_timeout is off and {server_words}: a command on a frozen server (SIGSTOP, a dead host without a reset) waits until the checkout's own deadline, if it has one{}",
                if server.is_some() {
                    " (statement_timeout stops long queries on a live server only)"
                } else {
                    ", and a runaway query runs as long as it likes"
                }
            ),
        ))
        .fix(match postgres_manager_defaults().configured_command_timeout() {
            Some(d) => format!(
                "keep the manager's command_timeout on (PgManager::command_timeout, default {})",
                fmt_d(d)
            ),
            None => "set the manager's command_timeout (PgManager::command_timeout)".to_owned(),
        });
    };
    match server {
        Some(s) if s < c => {
            // What the pool does with the server's cancellation: its owner's rule.
            let kept = matches!(
                poolwarden_postgres::classify_sqlstate(&SqlState::QUERY_CANCELED),
                ErrorClass::Keep
            );
            with_numbers(Finding::new(
                Severity::Info,
                check,
                Some("F10"),
                format!(
                    "{server_words} is below command_timeout {}: the server cancels a long statement first and the borrower gets error 57014 ({}); command_timeout still bounds a command on a frozen server",
                    fmt_d(c),
                    if kept {
                        "the pool keeps the connection"
                    } else {
                        "the pool drops the connection"
                    }
                ),
            ))
        }
        _ => with_numbers(Finding::new(
            Severity::Ok,
            check,
            Some("F10"),
            format!(
                "command_timeout {} ends a command first (and cancels it on the server); {server_words}",
                fmt_d(c)
            ),
        )),
    }
}

/// A fraction as a percentage ("75%").
fn fmt_fraction(f: f64) -> String {
    format!("{:.0}%", f * 100.0)
}

/// A manager as the application builds it by default: what its getters
/// answer is what the pool does unless the application says otherwise.
pub(crate) fn postgres_manager_defaults() -> poolwarden_postgres::PgManager {
    poolwarden_postgres::PgManager::new(tokio_postgres::Config::new())
}

/// F10: TCP keepalives: the pool's sockets (the manager's, for this URL)
/// notice a vanished server; the server's (`tcp_keepalives_idle`) notice a
/// vanished client.
pub(crate) fn tcp_keepalives(facts: &ServerFacts) -> Option<Finding> {
    let server = facts.tcp_keepalives_idle?;
    let server_words = if server.is_zero() {
        "the server's tcp_keepalives_idle is the OS default (often 2h): it notices a vanished client late".to_owned()
    } else {
        format!("the server's tcp_keepalives_idle {}", fmt_d(server))
    };
    let f = match facts.pool_keepalive_idle {
        None => Finding::new(
            Severity::Warn,
            "tcp-keepalive",
            Some("F10"),
            format!(
                "the URL switches TCP keepalives off (keepalives=0): a pooled connection to a host that vanished is noticed only when a deadline ends a command on it; {server_words}"
            ),
        )
        .fix(format!(
            "remove keepalives=0 from the URL (the manager then probes after keepalives_idle, default {})",
            fmt_d(poolwarden_postgres::DEFAULT_TCP_KEEPALIVE)
        )),
        Some(p) => Finding::new(
            Severity::Info,
            "tcp-keepalive",
            Some("F10"),
            format!(
                "the pool's sockets probe an idle connection after {} (the manager's default unless the URL sets keepalives_idle); {server_words}",
                fmt_d(p)
            ),
        ),
    };
    Some(
        f.opt_secs("pool_keepalive_idle", facts.pool_keepalive_idle)
            .secs("tcp_keepalives_idle", server),
    )
}
