//! PostgreSQL through `tokio-postgres` (no TLS).
//!
//! The settings are the ones the pool's manager reads when it opens a
//! connection, read with its own query and parser
//! ([`poolwarden_postgres::FACTS_SQL`], [`PgServerFacts::from_rows`]), so the
//! doctor judges exactly what the pool will see. Only what the manager does
//! not read (reserved slots, client backends, uptime) is the doctor's own
//! query ([`COUNTERS_SQL`]).

use std::time::Duration;

use poolwarden_postgres::{PgManager, PgServerFacts, FACTS_SQL};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::read::{io_error, no_answer, parse_u64};
use super::{Flavor, ServerFacts, Target};
use crate::error::DoctorError;

/// The counters only the doctor reads: client backends now (its own
/// included), seconds since the server started, and the slots kept for
/// superusers (`reserved_connections` exists from PostgreSQL 16).
const COUNTERS_SQL: &str = "SELECT \
     (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
     EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())::bigint, \
     (SELECT sum(setting::bigint) FROM pg_settings \
      WHERE name IN ('superuser_reserved_connections', 'reserved_connections'))";

/// One row of [`FACTS_SQL`]: name, setting, unit.
type Setting = (String, String, Option<String>);

pub(super) async fn read(target: &Target, timeout: Duration) -> Result<ServerFacts, DoctorError> {
    let mut config: Config = target
        .url
        .as_str()
        .parse()
        .map_err(|e: tokio_postgres::Error| DoctorError::BadUrl {
            url: target.redacted(),
            reason: e.to_string(),
        })?;
    // The sockets the pool would open for this URL: the manager's defaults
    // applied by the manager.
    let manager = PgManager::new(config.clone());
    let pool_keepalive_idle = manager
        .config()
        .get_keepalives()
        .then(|| manager.config().get_keepalives_idle());
    config.connect_timeout(timeout);
    config.application_name("poolwarden-doctor");
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Err(_) => {
            return Err(DoctorError::Timeout {
                addr: target.addr(),
                timeout,
            })
        }
        Ok(Err(e)) => return Err(classify(target, &e)),
        Ok(Ok(c)) => c,
    };
    let driver = tokio::spawn(connection);
    let read = tokio::time::timeout(timeout, read_on(&client)).await;
    // Dropping the client sends Terminate: a clean close.
    drop(client);
    let _ = tokio::time::timeout(timeout, driver).await;
    let mut facts = match read {
        Err(_) => return Err(no_answer(timeout)),
        Ok(r) => r.map_err(|e| DoctorError::Query(e.to_string()))?,
    };
    facts.pool_keepalive_idle = pool_keepalive_idle;
    Ok(facts)
}

async fn read_on(client: &Client) -> Result<ServerFacts, tokio_postgres::Error> {
    let settings: Vec<Setting> = rows(&client.simple_query(FACTS_SQL).await?)
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(name), Some(setting), unit] => {
                Some((name.clone(), setting.clone(), unit.clone()))
            }
            _ => None,
        })
        .collect();
    let mut facts = from_settings(&settings);
    let counters = rows(&client.simple_query(COUNTERS_SQL).await?);
    let counter = |i: usize| {
        counters
            .first()
            .and_then(|r| r.get(i)?.as_deref())
            .and_then(parse_u64)
    };
    facts.connected = counter(0);
    facts.uptime = counter(1);
    facts.reserved_connections = counter(2);
    Ok(facts)
}

/// The rows of a simple query, each column as text (`None` for NULL).
fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The facts from [`FACTS_SQL`]'s rows, parsed by the manager's parser;
/// the server idle timeout and `max_connections` are what the manager
/// reports to the pool ([`PgServerFacts::to_connection_facts`]). A setting
/// the server returned that the parser leaves unset is off (0); one the
/// server does not have (`idle_session_timeout` before PostgreSQL 14)
/// stays unknown.
pub(crate) fn from_settings(settings: &[Setting]) -> ServerFacts {
    let pg = PgServerFacts::from_rows(
        settings
            .iter()
            .map(|(n, s, u)| (n.as_str(), s.as_str(), u.as_deref())),
    );
    let pool_sees = pg.to_connection_facts();
    let has = |name: &str| settings.iter().any(|(n, _, _)| n == name);
    let off_or = |name: &str, v: Option<Duration>| has(name).then(|| v.unwrap_or(Duration::ZERO));
    ServerFacts {
        flavor: Flavor::Postgres,
        version: pg.server_version.clone().unwrap_or_default(),
        idle_session_timeout: off_or("idle_session_timeout", pool_sees.server_idle_timeout),
        idle_in_transaction_session_timeout: off_or(
            "idle_in_transaction_session_timeout",
            pg.idle_in_transaction_session_timeout,
        ),
        statement_timeout: off_or("statement_timeout", pg.statement_timeout),
        tcp_keepalives_idle: off_or("tcp_keepalives_idle", pg.tcp_keepalives_idle),
        max_connections: pool_sees.max_connections.map(u64::from),
        // DISCARD ALL exists in every supported version.
        reset_connection: Some(true),
        ..ServerFacts::default()
    }
}

fn classify(target: &Target, e: &tokio_postgres::Error) -> DoctorError {
    if let Some(code) = e.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return DoctorError::AccessDenied {
                user: target.user(),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return DoctorError::UnknownDatabase {
                database: target.database(),
            };
        }
        if *code == SqlState::TOO_MANY_CONNECTIONS {
            return DoctorError::TooManyConnections {
                addr: target.addr(),
            };
        }
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_error(target, io);
        }
        source = s.source();
    }
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned());
    DoctorError::Server {
        addr: target.addr(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, setting: &str, unit: Option<&str>) -> Setting {
        (name.to_owned(), setting.to_owned(), unit.map(str::to_owned))
    }

    #[test]
    fn settings_are_read_by_the_managers_parser() {
        let f = from_settings(&[
            row("idle_session_timeout", "2000", Some("ms")),
            row("idle_in_transaction_session_timeout", "0", Some("ms")),
            row("statement_timeout", "1", Some("min")),
            row("tcp_keepalives_idle", "0", Some("s")),
            row("max_connections", "100", None),
            row("server_version", "15.20 (Debian 15.20-0+deb12u1)", None),
        ]);
        assert_eq!(f.flavor, Flavor::Postgres);
        assert_eq!(f.version, "15.20 (Debian 15.20-0+deb12u1)");
        assert_eq!(f.idle_session_timeout, Some(Duration::from_secs(2)));
        assert_eq!(f.server_idle_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(
            f.idle_in_transaction_session_timeout,
            Some(Duration::ZERO),
            "0: off"
        );
        assert_eq!(f.statement_timeout, Some(Duration::from_secs(60)));
        assert_eq!(
            f.tcp_keepalives_idle,
            Some(Duration::ZERO),
            "0: the OS default"
        );
        assert_eq!(f.max_connections, Some(100));
    }

    #[test]
    fn a_setting_the_server_lacks_stays_unknown() {
        // PostgreSQL 13 has no idle_session_timeout.
        let f = from_settings(&[
            row("idle_in_transaction_session_timeout", "60000", Some("ms")),
            row("server_version", "13.16", None),
        ]);
        assert_eq!(f.idle_session_timeout, None);
        assert_eq!(f.server_idle_timeout(), None);
        assert_eq!(f.statement_timeout, None);
        assert_eq!(
            f.idle_in_transaction_session_timeout,
            Some(Duration::from_secs(60))
        );
    }
}
