//! What the doctor learned about the server, in one shape for MySQL,
//! MariaDB and PostgreSQL (serialised as the `"server"` object of
//! `--json`).

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Which server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Flavor {
    /// Oracle MySQL (or a fork that does not say MariaDB).
    #[default]
    MySql,
    /// MariaDB.
    MariaDb,
    /// PostgreSQL.
    Postgres,
}

impl Flavor {
    /// The product's name for people.
    pub(crate) fn product(self) -> &'static str {
        match self {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
            Flavor::Postgres => "PostgreSQL",
        }
    }

    /// Whether this is a MySQL-protocol server.
    pub(crate) fn is_mysql(self) -> bool {
        matches!(self, Flavor::MySql | Flavor::MariaDb)
    }
}

/// The facts read from the server. Timeouts are serialised as seconds
/// (Postgres: `0` when the server has the setting switched off, `null`
/// when it does not have it); counters are `None` where the server does not
/// have them.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ServerFacts {
    /// Which server.
    pub(crate) flavor: Flavor,
    /// `VERSION()` / `server_version`, as the server spells it.
    pub(crate) version: String,
    /// MySQL: `@@session.wait_timeout` as a non-interactive client (a pool)
    /// gets it.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) wait_timeout: Option<Duration>,
    /// MySQL: `@@global.wait_timeout`.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) wait_timeout_global: Option<Duration>,
    /// MySQL: `@@session.interactive_timeout`.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) interactive_timeout: Option<Duration>,
    /// MySQL: `@@global.interactive_timeout`.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) interactive_timeout_global: Option<Duration>,
    /// Postgres: `idle_session_timeout` (zero: off).
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) idle_session_timeout: Option<Duration>,
    /// Postgres: `idle_in_transaction_session_timeout` (zero: off).
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) idle_in_transaction_session_timeout: Option<Duration>,
    /// Postgres: `statement_timeout` (zero: off).
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) statement_timeout: Option<Duration>,
    /// Postgres: `tcp_keepalives_idle` (zero: the OS default).
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) tcp_keepalives_idle: Option<Duration>,
    /// Postgres: the TCP keepalive idle time the pool's manager
    /// (`PgManager`) puts on its sockets for this URL, its default unless
    /// the URL sets `keepalives_idle`; `None` when the URL switches
    /// keepalives off (`keepalives=0`), or for MySQL.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) pool_keepalive_idle: Option<Duration>,
    /// `max_connections`.
    pub(crate) max_connections: Option<u64>,
    /// Postgres: slots kept for superusers (`superuser_reserved_connections`
    /// plus `reserved_connections`), not available to an ordinary pool.
    pub(crate) reserved_connections: Option<u64>,
    /// Connections open now (`Threads_connected`; Postgres: client
    /// backends), counting the doctor's own.
    pub(crate) connected: Option<u64>,
    /// MySQL: `Max_used_connections`, the most open at once since start.
    pub(crate) max_used_connections: Option<u64>,
    /// MySQL: `Connections`, connection attempts since start.
    pub(crate) connections: Option<u64>,
    /// MySQL: `Aborted_clients`, connections dropped without a clean close.
    pub(crate) aborted_clients: Option<u64>,
    /// MySQL: `Aborted_connects`, failed connection attempts.
    pub(crate) aborted_connects: Option<u64>,
    /// Seconds since the server started.
    pub(crate) uptime: Option<u64>,
    /// MySQL: `max_allowed_packet`, bytes.
    pub(crate) max_allowed_packet: Option<u64>,
    /// Whether a full session reset without reconnecting is available
    /// (MySQL `COM_RESET_CONNECTION`; Postgres `DISCARD ALL`: always).
    pub(crate) reset_connection: Option<bool>,
}

impl ServerFacts {
    /// The idle timeout the server applies to a pool's connections, if any.
    pub(crate) fn server_idle_timeout(&self) -> Option<Duration> {
        let t = match self.flavor {
            Flavor::MySql | Flavor::MariaDb => self.wait_timeout.or(self.wait_timeout_global),
            Flavor::Postgres => self.idle_session_timeout,
        };
        t.filter(|t| !t.is_zero())
    }

    /// The name of that setting.
    pub(crate) fn idle_timeout_name(&self) -> &'static str {
        if self.flavor.is_mysql() {
            "wait_timeout"
        } else {
            "idle_session_timeout"
        }
    }
}

fn ser_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_idle_timeout_per_flavor() {
        let mut f = ServerFacts {
            wait_timeout: Some(Duration::from_secs(60)),
            wait_timeout_global: Some(Duration::from_secs(600)),
            ..ServerFacts::default()
        };
        assert_eq!(f.server_idle_timeout(), Some(Duration::from_secs(60)));
        f.wait_timeout = None;
        assert_eq!(f.server_idle_timeout(), Some(Duration::from_secs(600)));
        f.flavor = Flavor::Postgres;
        assert_eq!(f.server_idle_timeout(), None);
        f.idle_session_timeout = Some(Duration::ZERO);
        assert_eq!(f.server_idle_timeout(), None, "zero means off");
        f.idle_session_timeout = Some(Duration::from_secs(300));
        assert_eq!(f.server_idle_timeout(), Some(Duration::from_secs(300)));
        assert_eq!(f.idle_timeout_name(), "idle_session_timeout");
    }
}
