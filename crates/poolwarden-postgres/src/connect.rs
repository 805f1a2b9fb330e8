//! Connection options the manager applies on top of the user's, and opening
//! one connection.

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Config, NoTls};

use crate::cancel::CancelTarget;
use crate::conn::PgConn;
use crate::error::Error;
use crate::facts;
use crate::reset::InitSql;
use crate::task::Task;
use crate::tls::Tls;

/// TCP keepalive idle time applied when the config keeps tokio-postgres's
/// default of 2 hours (F10).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// tokio-postgres's default keepalive idle time.
const DRIVER_KEEPALIVE_DEFAULT: Duration = Duration::from_secs(2 * 60 * 60);

/// `application_name` when the config sets none, so that the pool's
/// sessions can be told apart in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "poolwarden";

/// The user's config with the manager's defaults.
pub(crate) fn apply_defaults(mut config: Config) -> Config {
    if config.get_keepalives() && config.get_keepalives_idle() == DRIVER_KEEPALIVE_DEFAULT {
        config.keepalives_idle(DEFAULT_TCP_KEEPALIVE);
    }
    if config.get_application_name().is_none() {
        config.application_name(DEFAULT_APPLICATION_NAME);
    }
    config
}

/// `user@host:port/db`, for messages (never the password).
pub(crate) fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        if hosts.is_empty() {
            "?".to_owned()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        },
        config.get_dbname().or(config.get_user()).unwrap_or("?"),
    )
}

/// What opening a connection needs besides the config.
#[derive(Debug, Clone)]
pub(crate) struct Open {
    pub(crate) init: InitSql,
    pub(crate) cancel_timeout: Duration,
    pub(crate) command_timeout: Option<Duration>,
    pub(crate) tls: Tls,
    /// Shared by the manager's connections (`verdict.rs`).
    pub(crate) verdict: std::sync::Arc<crate::verdict::Verdict>,
    /// The command deadlines of every connection, one timer for all; cut
    /// by `cut_in_flight` (`Pool::close` at `close_timeout`): every
    /// connection's commands are cut (`watchdog.rs`).
    pub(crate) watchdog: std::sync::Arc<crate::watchdog::Watchdog>,
}

/// Open a connection, spawn its task, run init SQL and read the server
/// facts (in one round trip).
pub(crate) async fn open(config: &Config, how: &Open) -> Result<PgConn, Error> {
    let failed = |source| Error::Connect {
        target: describe(config),
        source,
    };
    let (client, task) = match &how.tls {
        Tls::None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            (client, Task::spawn(connection))
        }
        #[cfg(feature = "tls-rustls")]
        Tls::Rustls(make) => {
            let (client, connection) = config.connect(make.clone()).await.map_err(failed)?;
            (client, Task::spawn(connection))
        }
    };
    // One round trip: the facts query is sent right behind the init SQL
    // (the server runs them in order, so the facts are read after it).
    let (init, facts) = tokio::join!(how.init.run(&client), facts::read(&client));
    init?;
    let facts = facts?;
    // The server answers: cancel requests held back while it may have been
    // frozen go now (`verdict.rs`).
    how.verdict.answered();
    Ok(PgConn::new(
        client,
        task,
        facts,
        CancelTarget::of(config, &how.tls),
        how,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keepalive_and_application_name() {
        let c = apply_defaults("postgres://u@127.0.0.1/db".parse().unwrap());
        assert_eq!(c.get_keepalives_idle(), DEFAULT_TCP_KEEPALIVE);
        assert_eq!(c.get_application_name(), Some(DEFAULT_APPLICATION_NAME));
        let c = apply_defaults(
            "postgres://u@127.0.0.1/db?keepalives_idle=5&application_name=shop"
                .parse()
                .unwrap(),
        );
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(c.get_application_name(), Some("shop"));
    }

    #[test]
    fn description_has_no_password() {
        let c: Config = "postgres://app:s3cret@db.example:5433/shop"
            .parse()
            .unwrap();
        assert_eq!(describe(&c), "app@db.example:5433/shop");
    }
}
