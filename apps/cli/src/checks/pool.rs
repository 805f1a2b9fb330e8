//! Pool settings against the server's timeouts: the pool's own rules
//! (`poolwarden::rules`) applied to what the server says (F1, F3, F6, F7,
//! F12).

use std::time::Duration;

use poolwarden::PoolConfig;

use super::*;

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
pub(crate) fn name_key(name: &str) -> &'static str {
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

/// F1/F3: checkout validation, against a short server timeout.
/// `learns`: whether the pool learns `t` at connect (both managers do by
/// default); then it retires idle connections at
/// [`poolwarden::rules::server_limit`], before the server closes them.
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
            .fix(format!(
                "set validation_bypass to the default \"{}\"",
                fmt_d(PoolConfig::default().validation_bypass)
            ));
        }
    }
    let f = Finding::new(
        Severity::Ok,
        check,
        Some("F3"),
        format!(
            "checkouts ping connections idle longer than {}",
            fmt_d(cfg.validation_bypass)
        ),
    )
    .num("skip_validation", false)
    .secs("validation_bypass", cfg.validation_bypass);
    match t {
        Some(t) if learns => {
            // The pool's own rule for when it retires an idle connection.
            let limit = poolwarden::rules::server_limit(t);
            Finding {
                message: format!(
                    "{}; the pool retires connections idle for {}, before the server's {name} {} closes them",
                    f.message,
                    fmt_d(limit),
                    fmt_d(t)
                ),
                ..f
            }
            .secs("retires_idle_after", limit)
        }
        _ => f,
    }
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
