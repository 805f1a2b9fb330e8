//! Output: an aligned, coloured table for people, JSON for scripts.
//!
//! The human renderers build a `String` with ANSI styles; the caller writes
//! it through `anstream`, which strips the styles when stdout is not a
//! terminal (or `NO_COLOR` is set, or `--color never`).

use std::fmt::Write as _;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use poolwarden::PoolConfig;
use serde_json::{json, Value};

use crate::checks::{fmt_bytes, fmt_d, secs_str, worst, Finding, Severity};
use crate::exit::Exit;
use crate::facts::ServerFacts;
use crate::live::LiveReport;

pub(crate) const BOLD: Style = Style::new().bold();
pub(crate) const DIM: Style = Style::new().dimmed();

fn sev_style(s: Severity) -> Style {
    match s {
        Severity::Ok => Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green))),
        Severity::Info => Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan))),
        Severity::Warn => Style::new()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)))
            .bold(),
        Severity::Error => Style::new()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
            .bold(),
    }
}

/// The exit code for a set of findings: [`Exit::Clean`] nothing above
/// info, [`Exit::Warnings`], [`Exit::Errors`].
pub(crate) fn exit_code(findings: &[Finding]) -> Exit {
    match worst(findings) {
        Severity::Ok | Severity::Info => Exit::Clean,
        Severity::Warn => Exit::Warnings,
        Severity::Error => Exit::Errors,
    }
}

/// The width text is wrapped to: `$COLUMNS` when set, else 110.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 60)
        .unwrap_or(110)
}

/// Greedy word wrap to `width` characters (at least one word a line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

/// Two aligned columns: `  key   value`.
pub(crate) fn kv(out: &mut String, rows: &[(String, String)]) {
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {}  {v}", pad(k, w));
    }
}

/// The findings table: SEVERITY, FAILURE, CHECK, FINDING (wrapped), and
/// each fix on its own line under the finding.
pub(crate) fn findings_table(out: &mut String, findings: &[Finding]) {
    let headers = ["SEVERITY", "FAILURE", "CHECK", "FINDING"];
    let w0 = headers[0].len();
    let w1 = findings
        .iter()
        .map(|f| f.failure.unwrap_or("-").len())
        .chain([headers[1].len()])
        .max()
        .unwrap_or(0);
    let w2 = findings
        .iter()
        .map(|f| f.check.len())
        .chain([headers[2].len()])
        .max()
        .unwrap_or(0);
    let indent = w0 + w1 + w2 + 6;
    let text_w = width().saturating_sub(indent).max(40);
    let _ = writeln!(
        out,
        "{BOLD}{}  {}  {}  {}{BOLD:#}",
        pad(headers[0], w0),
        pad(headers[1], w1),
        pad(headers[2], w2),
        headers[3]
    );
    for f in findings {
        let st = sev_style(f.severity);
        let mut lines = wrap(&f.message, text_w).into_iter();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(
            out,
            "{st}{}{st:#}  {}  {}  {first}",
            pad(f.severity.as_str(), w0),
            pad(f.failure.unwrap_or("-"), w1),
            pad(f.check, w2)
        );
        for l in lines {
            let _ = writeln!(out, "{}{l}", " ".repeat(indent));
        }
        if let Some(fix) = &f.fix {
            let mut lines = wrap(&format!("fix: {fix}"), text_w).into_iter();
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(out, "{}{st}{first}{st:#}", " ".repeat(indent));
            for l in lines {
                let _ = writeln!(out, "{}{st}{l}{st:#}", " ".repeat(indent));
            }
        }
    }
}

fn summary_line(out: &mut String, findings: &[Finding]) {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let code = exit_code(findings).code();
    let st = sev_style(worst(findings));
    let _ = writeln!(
        out,
        "\n{st}{}, {}, {}, {}{st:#} {DIM}(exit {code}){DIM:#}",
        plural(count(Severity::Error), "error", "errors"),
        plural(count(Severity::Warn), "warning", "warnings"),
        plural(count(Severity::Info), "info", "infos"),
        plural(count(Severity::Ok), "ok", "ok"),
    );
}

fn opt_d(d: Option<Duration>) -> String {
    d.map_or_else(|| "off".to_owned(), fmt_d)
}

fn opt_n(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// One line describing the pool settings checked.
fn pool_line(cfg: &PoolConfig) -> String {
    format!(
        "max_size {} + max_overflow {}, max_lifetime {}, idle_timeout {}, leak_threshold {}, checkout_timeout {}, validation {}",
        cfg.max_size,
        cfg.max_overflow,
        opt_d(cfg.max_lifetime),
        opt_d(cfg.idle_timeout),
        opt_d(cfg.leak_threshold),
        fmt_d(cfg.checkout_timeout),
        if cfg.skip_validation { "off" } else { "on" }
    )
}

/// The report of `doctor URL`, for people.
pub(crate) fn server_human(
    target: &str,
    facts: &ServerFacts,
    cfg: &PoolConfig,
    pool_source: &str,
    processes: u32,
    findings: &[Finding],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{BOLD}Server{BOLD:#}  {target}  {DIM}{} {}{DIM:#}",
        facts.flavor.product(),
        facts.version
    );
    let mut rows: Vec<(String, String)> = Vec::new();
    if facts.flavor.is_mysql() {
        rows.push((
            "wait_timeout".into(),
            format!(
                "{} (global {})",
                opt_d(facts.wait_timeout),
                opt_d(facts.wait_timeout_global)
            ),
        ));
        rows.push((
            "interactive_timeout".into(),
            format!(
                "{} (global {})",
                opt_d(facts.interactive_timeout),
                opt_d(facts.interactive_timeout_global)
            ),
        ));
    } else {
        let zero_off = |d: Option<Duration>| opt_d(d.filter(|d| !d.is_zero()));
        rows.push((
            "idle_session_timeout".into(),
            zero_off(facts.idle_session_timeout),
        ));
        rows.push((
            "idle_in_transaction_session_timeout".into(),
            zero_off(facts.idle_in_transaction_session_timeout),
        ));
        rows.push((
            "statement_timeout".into(),
            zero_off(facts.statement_timeout),
        ));
        rows.push((
            "tcp_keepalives_idle".into(),
            facts.tcp_keepalives_idle.map_or("?".into(), |d| {
                if d.is_zero() {
                    "OS default".into()
                } else {
                    fmt_d(d)
                }
            }),
        ));
        rows.push((
            "pool's keepalive".into(),
            format!(
                "{} (the manager's, for this URL)",
                opt_d(facts.pool_keepalive_idle)
            ),
        ));
    }
    let mut conns = format!(
        "{} ({} connected now",
        opt_n(facts.max_connections),
        opt_n(facts.connected)
    );
    if let Some(m) = facts.max_used_connections {
        let _ = write!(conns, ", {m} at most since start");
    }
    if let Some(r) = facts.reserved_connections.filter(|r| *r > 0) {
        let _ = write!(conns, ", {r} reserved for superusers");
    }
    conns.push(')');
    rows.push(("max_connections".into(), conns));
    if let (Some(c), Some(a), Some(b)) = (
        facts.connections,
        facts.aborted_clients,
        facts.aborted_connects,
    ) {
        rows.push((
            "connections".into(),
            format!("{c} since start; Aborted_clients {a}, Aborted_connects {b}"),
        ));
    }
    if let Some(p) = facts.max_allowed_packet {
        rows.push(("max_allowed_packet".into(), fmt_bytes(p)));
    }
    if let Some(r) = facts.reset_connection {
        let name = if facts.flavor.is_mysql() {
            "COM_RESET_CONNECTION"
        } else {
            "DISCARD ALL"
        };
        rows.push((
            name.into(),
            if r { "supported" } else { "not supported" }.into(),
        ));
    }
    if let Some(u) = facts.uptime {
        rows.push(("uptime".into(), fmt_d(Duration::from_secs(u))));
    }
    kv(&mut out, &rows);
    let heading = format!(
        "{pool_source}, {processes} process{}",
        if processes == 1 { "" } else { "es" }
    );
    pool_and_findings(&mut out, &heading, cfg, findings);
    out
}

/// The tail of a report: the pool settings checked (under `heading`), the
/// findings table and the summary line.
pub(crate) fn pool_and_findings(
    out: &mut String,
    heading: &str,
    cfg: &PoolConfig,
    findings: &[Finding],
) {
    let _ = writeln!(out, "\n{BOLD}Pool{BOLD:#}  {heading}");
    for l in wrap(&pool_line(cfg), width().saturating_sub(2)) {
        let _ = writeln!(out, "  {l}");
    }
    out.push('\n');
    findings_table(out, findings);
    summary_line(out, findings);
}

/// The report of `doctor --live URL`, for people.
pub(crate) fn live_human(target: &str, report: &LiveReport, findings: &[Finding]) -> String {
    let mut out = String::new();
    let s = &report.status;
    let _ = writeln!(
        out,
        "{BOLD}Pool{BOLD:#}  {}  {DIM}{target}{DIM:#}",
        report.pool
    );
    let mut closed: Vec<String> = poolwarden::CloseReason::ALL
        .iter()
        .map(|&r| (r.as_str(), s.closed.get(r)))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if closed.is_empty() {
        closed.push("none".into());
    }
    let rows = vec![
        (
            "in use".to_owned(),
            format!(
                "{}/{} (max_size {}; {} open, {} idle, {} overflow)",
                s.in_use, s.max_open, s.max_size, s.open, s.idle, s.overflow
            ),
        ),
        ("waiting".to_owned(), s.waiting.to_string()),
        (
            "checkouts".to_owned(),
            format!(
                "{} ({} timed out, {} reported as leaks)",
                s.checkouts, s.timeouts, s.leaks
            ),
        ),
        (
            "connections".to_owned(),
            format!(
                "{} created, {} connect failures, {} invalidations",
                s.created, s.connect_failures, s.invalidations
            ),
        ),
        ("closed by reason".to_owned(), closed.join(", ")),
    ];
    kv(&mut out, &rows);
    if let Some(cfg) = &report.config {
        let _ = writeln!(out, "\n{BOLD}Settings{BOLD:#}");
        for l in wrap(&pool_line(cfg), width().saturating_sub(2)) {
            let _ = writeln!(out, "  {l}");
        }
    }
    if !report.checkouts.is_empty() {
        let _ = writeln!(
            out,
            "\n{BOLD}Checkouts{BOLD:#} {DIM}(longest held first){DIM:#}"
        );
        let mut cs: Vec<_> = report.checkouts.iter().collect();
        cs.sort_by(|a, b| b.held_for.total_cmp(&a.held_for));
        let rows: Vec<[String; 6]> = cs
            .iter()
            .map(|c| {
                [
                    format!("#{}", c.id),
                    format!("conn {}", c.connection_id),
                    secs_str(c.held_for),
                    c.server_idle_timeout
                        .filter(|t| *t > 0.0)
                        .map_or("-".into(), secs_str),
                    if c.leak_reported {
                        "leak".into()
                    } else {
                        String::new()
                    },
                    match &c.label {
                        Some(l) => format!("{} [{l}]", c.location),
                        None => c.location.clone(),
                    },
                ]
            })
            .collect();
        let head = ["ID", "CONN", "HELD", "SERVER TIMEOUT", "", "WHERE"];
        let mut w = [0usize; 6];
        for (i, h) in head.iter().enumerate() {
            w[i] = rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0);
        }
        let _ = writeln!(
            out,
            "  {BOLD}{}  {}  {}  {}  {}  {}{BOLD:#}",
            pad(head[0], w[0]),
            pad(head[1], w[1]),
            pad(head[2], w[2]),
            pad(head[3], w[3]),
            pad(head[4], w[4]),
            head[5]
        );
        for r in rows {
            let _ = writeln!(
                out,
                "  {}  {}  {}  {}  {}  {}",
                pad(&r[0], w[0]),
                pad(&r[1], w[1]),
                pad(&r[2], w[2]),
                pad(&r[3], w[3]),
                pad(&r[4], w[4]),
                r[5]
            );
        }
    }
    out.push('\n');
    findings_table(&mut out, findings);
    summary_line(&mut out, findings);
    out
}

pub(crate) fn summary_json(findings: &[Finding]) -> Value {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    json!({
        "worst": worst(findings),
        "error": count(Severity::Error),
        "warn": count(Severity::Warn),
        "info": count(Severity::Info),
        "ok": count(Severity::Ok),
        "exit_code": exit_code(findings).code(),
    })
}

/// The report of `doctor URL`, for scripts.
pub(crate) fn server_json(
    target: &str,
    facts: &ServerFacts,
    cfg: &PoolConfig,
    processes: u32,
    findings: &[Finding],
) -> Value {
    json!({
        "mode": "server",
        "target": target,
        "server": facts,
        "pool": cfg,
        "processes": processes,
        "findings": findings,
        "summary": summary_json(findings),
    })
}

/// The report of `doctor --live URL`, for scripts.
pub(crate) fn live_json(target: &str, report: &LiveReport, findings: &[Finding]) -> Value {
    json!({
        "mode": "live",
        "target": target,
        "pool": report.pool,
        "status": report.status,
        "checkouts": report.checkouts,
        "config": report.config,
        "findings": findings,
        "summary": summary_json(findings),
    })
}

/// An error, for scripts (`--json`).
pub(crate) fn error_json(message: &str) -> Value {
    json!({ "error": message, "summary": { "exit_code": Exit::Undiagnosed.code() } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::check_server;
    use crate::facts::Flavor;

    fn facts() -> ServerFacts {
        ServerFacts {
            flavor: Flavor::MariaDb,
            version: "11.8.3-MariaDB".into(),
            wait_timeout: Some(Duration::from_secs(60)),
            wait_timeout_global: Some(Duration::from_secs(60)),
            max_connections: Some(151),
            connected: Some(2),
            ..ServerFacts::default()
        }
    }

    fn strip(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    #[test]
    fn wraps_on_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), vec![""]);
        assert_eq!(
            wrap("averyveryverylongword x", 4),
            vec!["averyveryverylongword", "x"]
        );
    }

    #[test]
    fn table_is_aligned_and_shows_fixes() {
        let fs = check_server(&facts(), &PoolConfig::default(), 1, None);
        let text = strip(&server_human(
            "mysql://h/db",
            &facts(),
            &PoolConfig::default(),
            "defaults",
            1,
            &fs,
        ));
        let header = text.lines().find(|l| l.starts_with("SEVERITY")).unwrap();
        let col = header.find("FINDING").unwrap();
        for l in text
            .lines()
            .skip_while(|l| !l.starts_with("SEVERITY"))
            .skip(1)
        {
            if l.is_empty() {
                break;
            }
            // Every row and continuation line starts its text at the FINDING column.
            assert!(l.len() > col, "{l:?}");
            assert!(!l[col..].starts_with(' '), "misaligned: {l:?}");
        }
        assert!(
            text.contains("fix: set idle_timeout below wait_timeout"),
            "{text}"
        );
        assert!(text.contains("(exit 1)"), "{text}");
    }

    #[test]
    fn colours_are_ansi_and_strippable() {
        let fs = check_server(&facts(), &PoolConfig::default(), 1, None);
        let text = server_human(
            "mysql://h/db",
            &facts(),
            &PoolConfig::default(),
            "defaults",
            1,
            &fs,
        );
        assert!(text.contains("\u{1b}["), "styled");
        assert!(!strip(&text).contains('\u{1b}'));
    }

    #[test]
    fn exit_codes_follow_the_worst_finding() {
        assert_eq!(exit_code(&[]).code(), 0);
        let mut fs = check_server(&facts(), &PoolConfig::default(), 1, None);
        assert_eq!(exit_code(&fs).code(), 1);
        fs = check_server(&facts(), &PoolConfig::default(), 100, None);
        assert_eq!(exit_code(&fs).code(), 2);
    }

    #[test]
    fn json_has_findings_and_summary() {
        let fs = check_server(&facts(), &PoolConfig::default(), 1, None);
        let v = server_json("t", &facts(), &PoolConfig::default(), 1, &fs);
        assert_eq!(v["summary"]["exit_code"], 1);
        assert_eq!(v["server"]["wait_timeout"], 60.0);
        assert_eq!(v["pool"]["max_lifetime"], "30m");
        let f1 = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "max-lifetime")
            .unwrap();
        assert_eq!(f1["failure"], "F1");
        assert_eq!(f1["severity"], "warn");
        assert_eq!(f1["numbers"]["wait_timeout"], 60.0);
    }
}
