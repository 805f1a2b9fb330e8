//! Settings: flags over environment over the config file over defaults.

use std::net::SocketAddr;
use std::path::Path;

use poolwarden::PoolConfig;
use serde::Deserialize;

use crate::cli::{Cli, DEFAULT_DATABASE_URL};

/// The service's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) database_url: String,
    pub(crate) listen: SocketAddr,
    pub(crate) pool: PoolConfig,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    pool: Option<PoolConfig>,
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
    /// The file is not valid.
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
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
        Ok(Settings {
            database_url: explicit_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            pool,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: shown.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::Parse {
        path: shown,
        source: Box::new(source),
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
