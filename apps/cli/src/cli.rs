//! The command line, with clap's derive API.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use poolwarden::PoolConfig;

use crate::error::DoctorError;

const EXIT_CODES: &str = "\
Exit codes:
  0  no finding above info
  1  warnings found
  2  errors found
  3  could not diagnose: bad input, server unreachable, access denied";

/// poolwarden: checks a pool's settings against the database server it talks
/// to, and reads a running service's pool.
#[derive(Debug, Parser)]
#[command(name = "poolwarden", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check pool settings against a server's timeouts and limits, or read a
    /// running service's /debug/pool.
    #[command(after_help = DOCTOR_AFTER_HELP)]
    Doctor(DoctorArgs),
}

const DOCTOR_AFTER_HELP: &str = "\
Examples:
  poolwarden doctor mysql://app:secret@db:3306/app --processes 8 --max-size 10
  poolwarden doctor postgres://app@db/app --pool-config pool.toml --json
  poolwarden doctor mysql://app:secret@db1:3306,db2:3306,db3:3306/app   (a Galera cluster)
  poolwarden doctor --live http://127.0.0.1:8080/debug/pool

Durations are written like 30s, 10m, 1h 30m; `off` disables max_lifetime,
idle_timeout, keepalive_interval and leak_threshold.

Exit codes:
  0  no finding above info
  1  warnings found
  2  errors found
  3  could not diagnose: bad input, server unreachable, access denied";

/// `poolwarden doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The database URL (mysql://, mariadb://, postgres://; several
    /// host:port separated by commas for a Galera cluster), or with --live
    /// the URL of a service's /debug/pool endpoint.
    #[arg(value_name = "URL")]
    pub(crate) url: String,

    /// Read a running service's /debug/pool (plain HTTP) instead of a database.
    #[arg(long, conflicts_with_all = [
        "pool_config", "processes", "max_size", "max_overflow", "min_idle",
        "max_lifetime", "idle_timeout", "keepalive_interval", "leak_threshold",
        "checkout_timeout", "validation_bypass", "skip_validation", "command_timeout",
    ])]
    pub(crate) live: bool,

    /// Pool settings from a file: TOML, or JSON when it ends in .json; the
    /// fields of poolwarden's PoolConfig. Flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) pool_config: Option<PathBuf>,

    /// How many processes run this pool against the same server.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) processes: u32,

    /// Bound on connecting and on each query or request.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,

    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    /// When to colour the table.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub(crate) color: ColorWhen,

    #[command(flatten)]
    pub(crate) pool: PoolFlags,

    /// PostgreSQL: the manager's bound on each command a borrower runs
    /// (`PgManager::command_timeout`), checked against the server's
    /// statement_timeout [default: the manager's, 30s].
    #[arg(long, value_name = "DURATION|off", value_parser = parse_limit, help_heading = "Manager settings")]
    pub(crate) command_timeout: Option<Limit>,
}

/// Pool settings given as flags; each overrides the file's (or the default).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Pool settings (defaults: PoolConfig::default())")]
pub(crate) struct PoolFlags {
    /// Connections kept open per process [default: 10].
    #[arg(long, value_name = "N")]
    pub(crate) max_size: Option<u32>,
    /// Extra connections under a burst [default: 0].
    #[arg(long, value_name = "N")]
    pub(crate) max_overflow: Option<u32>,
    /// Idle connections kept warm [default: 0].
    #[arg(long, value_name = "N")]
    pub(crate) min_idle: Option<u32>,
    /// Retire connections older than this [default: 30m].
    #[arg(long, value_name = "DURATION|off", value_parser = parse_limit)]
    pub(crate) max_lifetime: Option<Limit>,
    /// Close connections idle this long [default: 10m].
    #[arg(long, value_name = "DURATION|off", value_parser = parse_limit)]
    pub(crate) idle_timeout: Option<Limit>,
    /// Ping idle connections this often [default: 2m].
    #[arg(long, value_name = "DURATION|off", value_parser = parse_limit)]
    pub(crate) keepalive_interval: Option<Limit>,
    /// Report checkouts held longer than this [default: 30s].
    #[arg(long, value_name = "DURATION|off", value_parser = parse_limit)]
    pub(crate) leak_threshold: Option<Limit>,
    /// The longest a checkout may wait [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) checkout_timeout: Option<Duration>,
    /// Connections used this recently skip the checkout ping [default: 500ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) validation_bypass: Option<Duration>,
    /// Skip the checkout ping (`--skip-validation=false` turns a file's
    /// `true` off) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) skip_validation: Option<bool>,
}

/// A duration setting that can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub(crate) Option<Duration>);

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// Colour when stdout is a terminal (and NO_COLOR is unset).
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 30s, 10m, 1h 30m, 500ms)"))
}

/// A positive duration: `--timeout 0s` would fail every connect at once.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than zero (for example 5s)".to_owned()),
        d => Ok(d),
    }
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "never" => Ok(Limit(None)),
        _ => parse_duration(s).map(|d| Limit(Some(d))),
    }
}

impl DoctorArgs {
    /// The pool settings: `PoolConfig::default()`, then the file, then flags.
    pub(crate) fn pool_config(&self) -> Result<PoolConfig, DoctorError> {
        let mut cfg = match &self.pool_config {
            Some(path) => load_config(path)?,
            None => PoolConfig::default(),
        };
        self.pool.apply(&mut cfg);
        Ok(cfg)
    }

    /// The Postgres manager's `command_timeout`: the flag, or the
    /// manager's default.
    pub(crate) fn command_timeout(&self) -> Option<std::time::Duration> {
        self.command_timeout.map_or_else(
            || crate::checks::postgres_manager_defaults().configured_command_timeout(),
            |l| l.0,
        )
    }

    /// Where the pool settings came from, for the report.
    pub(crate) fn pool_source(&self) -> String {
        match (&self.pool_config, self.pool.any()) {
            (Some(p), true) => format!("settings from {} with flags", p.display()),
            (Some(p), false) => format!("settings from {}", p.display()),
            (None, true) => "defaults with flags".to_owned(),
            (None, false) => "default settings".to_owned(),
        }
    }
}

impl PoolFlags {
    fn apply(&self, cfg: &mut PoolConfig) {
        if let Some(v) = self.max_size {
            cfg.max_size = v;
        }
        if let Some(v) = self.max_overflow {
            cfg.max_overflow = v;
        }
        if let Some(v) = self.min_idle {
            cfg.min_idle = v;
        }
        if let Some(Limit(v)) = self.max_lifetime {
            cfg.max_lifetime = v;
        }
        if let Some(Limit(v)) = self.idle_timeout {
            cfg.idle_timeout = v;
        }
        if let Some(Limit(v)) = self.keepalive_interval {
            cfg.keepalive_interval = v;
        }
        if let Some(Limit(v)) = self.leak_threshold {
            cfg.leak_threshold = v;
        }
        if let Some(v) = self.checkout_timeout {
            cfg.checkout_timeout = v;
        }
        if let Some(v) = self.validation_bypass {
            cfg.validation_bypass = v;
        }
        if let Some(v) = self.skip_validation {
            cfg.skip_validation = v;
        }
    }

    /// Whether any pool flag was given.
    pub(crate) fn any(&self) -> bool {
        self.max_size.is_some()
            || self.max_overflow.is_some()
            || self.min_idle.is_some()
            || self.max_lifetime.is_some()
            || self.idle_timeout.is_some()
            || self.keepalive_interval.is_some()
            || self.leak_threshold.is_some()
            || self.checkout_timeout.is_some()
            || self.validation_bypass.is_some()
            || self.skip_validation.is_some()
    }
}

/// Reads a `PoolConfig` from TOML, or JSON when the file ends in `.json`.
pub(crate) fn load_config(path: &std::path::Path) -> Result<PoolConfig, DoctorError> {
    let err = |reason: String| DoctorError::Config {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    } else {
        // toml's messages span lines (they quote the source); keep the first.
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().trim().to_owned();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    err(format!("line {line}: {msg}"))
                }
                None => err(msg),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::io::Write;

    fn doctor(args: &[&str]) -> DoctorArgs {
        let mut v = vec!["poolwarden", "doctor"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Doctor(d) => d,
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_pool_config_default() {
        let d = doctor(&["mysql://h/db"]);
        assert_eq!(d.pool_config().unwrap(), PoolConfig::default());
        assert_eq!(d.processes, 1);
        assert_eq!(d.timeout, Duration::from_secs(5));
        assert!(!d.pool.any());
    }

    #[test]
    fn flags_set_fields_and_off_disables() {
        let d = doctor(&[
            "mysql://h/db",
            "--max-size=20",
            "--max-overflow=5",
            "--max-lifetime=1h",
            "--idle-timeout=off",
            "--leak-threshold",
            "none",
            "--checkout-timeout=45s",
            "--skip-validation",
            "--processes=4",
        ]);
        let c = d.pool_config().unwrap();
        assert_eq!(
            d.command_timeout(),
            poolwarden_postgres::DEFAULT_COMMAND_TIMEOUT.into()
        );
        assert_eq!(c.max_size, 20);
        assert_eq!(c.max_overflow, 5);
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.leak_threshold, None);
        assert_eq!(c.checkout_timeout, Duration::from_secs(45));
        assert!(c.skip_validation);
        assert_eq!(d.processes, 4);
    }

    #[test]
    fn flags_override_the_file() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(
            f,
            "max_size = 3\nskip_validation = true\nidle_timeout = \"1m\""
        )
        .unwrap();
        let p = f.path().to_str().unwrap();
        let c = doctor(&["mysql://h/db", "--pool-config", p])
            .pool_config()
            .unwrap();
        assert_eq!(c.max_size, 3);
        assert!(c.skip_validation);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
        let c = doctor(&[
            "mysql://h/db",
            "--pool-config",
            p,
            "--max-size=7",
            "--skip-validation=false",
        ])
        .pool_config()
        .unwrap();
        assert_eq!(c.max_size, 7);
        assert!(!c.skip_validation);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn json_config_by_extension() {
        let mut f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        write!(f, r#"{{"max_size": 4, "leak_threshold": null}}"#).unwrap();
        let c = load_config(f.path()).unwrap();
        assert_eq!(c.max_size, 4);
        assert_eq!(c.leak_threshold, None);
    }

    #[test]
    fn unknown_config_field_is_a_one_line_error() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(f, "max_size = 3\nmax_sise = 4").unwrap();
        let e = load_config(f.path()).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("max_sise"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let e = load_config(std::path::Path::new("/nonexistent/pool.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pool.toml"));
    }

    #[test]
    fn bad_durations_and_conflicts_are_rejected() {
        assert!(
            Cli::try_parse_from(["poolwarden", "doctor", "u", "--max-lifetime", "soon"]).is_err()
        );
        assert!(Cli::try_parse_from(["poolwarden", "doctor", "u", "--processes", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["poolwarden", "doctor", "--live", "u", "--max-size", "3"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["poolwarden", "doctor", "--live", "u", "--json"]).is_ok());
        assert!(Cli::try_parse_from([
            "poolwarden",
            "doctor",
            "--live",
            "u",
            "--command-timeout=5s"
        ])
        .is_err());
        assert_eq!(
            doctor(&["postgres://h/db", "--command-timeout", "off"]).command_timeout(),
            None
        );
        assert_eq!(
            doctor(&["postgres://h/db", "--command-timeout=5s"]).command_timeout(),
            Some(Duration::from_secs(5))
        );
    }
}
