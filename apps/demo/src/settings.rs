//! Settings: flags over environment over the config file over defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use poolwarden::redact::Redactor;
use poolwarden::PoolConfig;
use serde::Deserialize;

use crate::cli::{Cli, DEFAULT_DATABASE_URL};

/// The service's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) database_url: String,
    /// Whether the URL was given (flag, environment or file): then it is
    /// used or the service fails to start; only the default URL may fall
    /// back to a private server.
    pub(crate) url_given: bool,
    pub(crate) listen: SocketAddr,
    /// The operators' listener (`/debug/pool`, `/metrics`).
    pub(crate) admin_listen: SocketAddr,
    pub(crate) pool: PoolConfig,
    pub(crate) http: HttpSettings,
    pub(crate) reports: ReportSettings,
    pub(crate) idempotency: IdempotencySettings,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    pool: Option<PoolConfig>,
    http: Option<HttpSettings>,
    reports: Option<ReportSettings>,
    idempotency: Option<IdempotencySettings>,
}

/// HTTP limits (`[http]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSettings {
    /// How long a client may take to send a request's headers, and how long
    /// an idle keep-alive connection is kept. Defaults to 10s; prevents
    /// slow-loris connections holding sockets for minutes.
    #[serde(with = "humantime_serde")]
    pub(crate) header_read_timeout: Duration,
    /// How long a client may take to send a request's body. Defaults to
    /// 10s; prevents a partial body holding a handler (and its connection).
    #[serde(with = "humantime_serde")]
    pub(crate) body_timeout: Duration,
    /// How long a request may take in all: its deadline (504 after; its
    /// checkouts wait at most until it). Defaults to 30s.
    #[serde(with = "humantime_serde")]
    pub(crate) request_timeout: Duration,
    /// Concurrent client connections; further ones wait in the listen
    /// backlog. Defaults to 1024; prevents running out of file descriptors.
    pub(crate) max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Report work (`[reports]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReportSettings {
    /// Connections report work may hold at once (its bulkhead). Defaults
    /// to 2; the rest of the pool is kept for requests.
    pub(crate) max_connections: u32,
    /// Reports accepted but not finished; `POST /reports` answers 429 when
    /// full. Defaults to 64.
    pub(crate) queue: usize,
    /// Finished reports kept for `GET /reports/{id}`, oldest dropped first.
    /// Defaults to 1000.
    pub(crate) keep: usize,
    /// How long a finished report is kept. Defaults to 10m.
    #[serde(with = "humantime_serde")]
    pub(crate) keep_for: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            max_connections: 2,
            queue: 64,
            keep: 1000,
            keep_for: Duration::from_secs(600),
        }
    }
}

/// `Idempotency-Key` retention (`[idempotency]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct IdempotencySettings {
    /// How long a key and its stored answer are kept: a retry with the key
    /// within it gets the first answer. Defaults to 24h; prevents the
    /// table growing without bound.
    #[serde(with = "humantime_serde")]
    pub(crate) retention: Duration,
    /// How often expired keys are deleted. Defaults to 1m.
    #[serde(with = "humantime_serde")]
    pub(crate) cleanup_interval: Duration,
    /// Keys deleted per statement at most (a backlog is deleted a batch at
    /// a time). Defaults to 1000; prevents one long delete holding locks.
    pub(crate) cleanup_batch: u32,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            retention: Duration::from_secs(24 * 3600),
            cleanup_interval: Duration::from_secs(60),
            cleanup_batch: 1000,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid. The message is redacted: TOML errors quote
    /// the offending line, which may hold a password.
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Settings {
    /// Resolve the settings. Flags and environment variables are already
    /// merged by clap (flags win).
    pub(crate) fn load(cli: &Cli) -> Result<Settings, SettingsError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let explicit_url = cli.database_url.clone().or(file.database_url);
        let mut pool = file.pool.unwrap_or_default();
        if pool.name == PoolConfig::default().name {
            pool.name = "demo".to_owned();
        }
        let http = file.http.unwrap_or_default();
        let reports = file.reports.unwrap_or_default();
        let idempotency = file.idempotency.unwrap_or_default();
        if http.max_connections == 0
            || reports.queue == 0
            || reports.max_connections == 0
            || idempotency.cleanup_batch == 0
        {
            return Err(SettingsError::Invalid(
                "http.max_connections, reports.queue, reports.max_connections and idempotency.cleanup_batch must be 1 or more"
                    .to_owned(),
            ));
        }
        if idempotency.cleanup_interval.is_zero() || idempotency.retention.is_zero() {
            return Err(SettingsError::Invalid(
                "idempotency.retention and idempotency.cleanup_interval must be above zero"
                    .to_owned(),
            ));
        }
        if reports.max_connections >= pool.max_size {
            return Err(SettingsError::Invalid(format!(
                "reports.max_connections ({}) must be below pool.max_size ({}), or reports could take every connection requests need",
                reports.max_connections, pool.max_size
            )));
        }
        Ok(Settings {
            url_given: explicit_url.is_some(),
            database_url: explicit_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: cli
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
            pool,
            http,
            reports,
            idempotency,
        })
    }
}

/// A redactor for everything this process may print: the URL from the
/// flag or environment and every URL in the config file.
pub(crate) fn redactor(cli: &Cli) -> Redactor {
    let mut r = Redactor::new();
    if let Some(url) = &cli.database_url {
        r.add_url(url);
    }
    if let Some(text) = cli
        .config
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        for line in text.lines() {
            r.add_url(line);
        }
    }
    r
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: shown.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        // Not `e.to_string()`: it quotes the line, which may hold a password.
        let mut r = Redactor::new();
        for line in text.lines() {
            r.add_url(line);
        }
        let at = e
            .span()
            .map(|s| {
                format!(
                    "line {}: ",
                    text[..s.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        SettingsError::Parse {
            path: shown,
            message: r.text(&format!("{at}{}", e.message())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("pw-demo-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("demo.toml");
        std::fs::write(
            &file,
            "database_url = \"mysql://u@127.0.0.1:1/x\"\nlisten = \"127.0.0.1:9999\"\n[pool]\nmax_size = 3\ncheckout_timeout = \"2s\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "demo",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7777",
        ]);
        let s = Settings::load(&cli).unwrap();
        assert_eq!(s.database_url, "mysql://u@127.0.0.1:1/x");
        assert_eq!(s.listen.port(), 7777);
        assert_eq!(s.pool.max_size, 3);
        assert_eq!(s.pool.checkout_timeout, std::time::Duration::from_secs(2));
        assert_eq!(s.pool.name, "demo");
    }

    #[test]
    fn a_bad_file_names_the_problem() {
        let dir = std::env::temp_dir().join(format!("pw-demo-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[pool]\nmax_sise = 3\n").unwrap();
        let cli = Cli::parse_from(["demo", "--config", file.to_str().unwrap()]);
        let err = Settings::load(&cli).unwrap_err().to_string();
        assert!(err.contains("max_sise"), "{err}");
        let cli = Cli::parse_from(["demo"]);
        let s = Settings::load(&cli).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
    }
}
