//! Server facts read once per connection, in one simple query after the
//! init SQL (so a `SET idle_session_timeout = ...` there is what the pool
//! sees).

use std::time::Duration;

use poolwarden::ConnectionFacts;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The one query: the settings (in their base units) the pool and the
/// doctor care about, as the session sees them.
pub const FACTS_SQL: &str = "SELECT name, setting, unit FROM pg_settings WHERE name IN \
    ('idle_session_timeout', 'idle_in_transaction_session_timeout', 'statement_timeout', \
    'tcp_keepalives_idle', 'max_connections', 'server_version')";

/// What a PostgreSQL server told a connection when it opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgServerFacts {
    /// `idle_session_timeout` (PostgreSQL 14+): the server closes a session
    /// idle outside a transaction this long (F1). `None` when 0 or unknown.
    pub idle_session_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: the server closes a session
    /// idle inside a transaction this long (F6). `None` when 0 or unknown.
    pub idle_in_transaction_session_timeout: Option<Duration>,
    /// `statement_timeout`: the server cancels statements running longer.
    /// `None` when 0 or unknown.
    pub statement_timeout: Option<Duration>,
    /// `tcp_keepalives_idle` as the server applies it to this socket
    /// (`None` when 0, the operating system's default).
    pub tcp_keepalives_idle: Option<Duration>,
    /// `max_connections`.
    pub max_connections: Option<u32>,
    /// `server_version`.
    pub server_version: Option<String>,
}

impl PgServerFacts {
    /// The facts in the pool's terms: `idle_session_timeout` is the server
    /// idle timeout.
    pub fn to_connection_facts(&self) -> ConnectionFacts {
        let mut facts = ConnectionFacts::with_idle_timeout(self.idle_session_timeout);
        facts.max_connections = self.max_connections;
        facts.server_version = self.server_version.clone();
        facts
    }

    /// Read them from `(name, setting, unit)` rows of [`FACTS_SQL`];
    /// unreadable values stay unknown.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
    ) -> Self {
        let mut facts = PgServerFacts::default();
        for (name, setting, unit) in rows {
            let duration = || duration(setting, unit);
            match name {
                "idle_session_timeout" => facts.idle_session_timeout = duration(),
                "idle_in_transaction_session_timeout" => {
                    facts.idle_in_transaction_session_timeout = duration()
                }
                "statement_timeout" => facts.statement_timeout = duration(),
                "tcp_keepalives_idle" => facts.tcp_keepalives_idle = duration(),
                "max_connections" => facts.max_connections = setting.parse().ok(),
                "server_version" => facts.server_version = Some(setting.to_owned()),
                _ => {}
            }
        }
        facts
    }
}

/// A setting in its base unit (`ms`, `s`, `min`); 0 means off.
fn duration(setting: &str, unit: Option<&str>) -> Option<Duration> {
    let n: u64 = setting.parse().ok()?;
    let d = match unit? {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "min" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// Read the facts. A server error (a proxy that hides `pg_settings`, say)
/// gives unknown facts, not a failed connect; any other error is returned.
pub(crate) async fn read(client: &Client) -> Result<PgServerFacts, tokio_postgres::Error> {
    match client.simple_query(FACTS_SQL).await {
        Ok(messages) => {
            let rows: Vec<_> = messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some((r.get(0)?, r.get(1)?, r.get(2))),
                    _ => None,
                })
                .collect();
            Ok(PgServerFacts::from_rows(rows))
        }
        Err(e) if e.as_db_error().is_some() => {
            tracing::debug!(error = %e, "could not read server facts; continuing without them");
            Ok(PgServerFacts::default())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_in_their_units() {
        let f = PgServerFacts::from_rows([
            ("idle_session_timeout", "2000", Some("ms")),
            ("idle_in_transaction_session_timeout", "0", Some("ms")),
            ("statement_timeout", "30000", Some("ms")),
            ("tcp_keepalives_idle", "7200", Some("s")),
            ("max_connections", "100", None),
            ("server_version", "15.18 (Debian 15.18-0+deb12u1)", None),
        ]);
        assert_eq!(f.idle_session_timeout, Some(Duration::from_secs(2)));
        assert_eq!(f.idle_in_transaction_session_timeout, None);
        assert_eq!(f.statement_timeout, Some(Duration::from_secs(30)));
        assert_eq!(f.tcp_keepalives_idle, Some(Duration::from_secs(7200)));
        assert_eq!(f.max_connections, Some(100));
        let c = f.to_connection_facts();
        assert_eq!(c.server_idle_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.max_connections, Some(100));
        assert!(c.server_version.unwrap().starts_with("15.18"));
    }

    #[test]
    fn garbage_is_unknown() {
        let f = PgServerFacts::from_rows([
            ("idle_session_timeout", "soon", Some("ms")),
            ("statement_timeout", "5", Some("fortnight")),
            ("max_connections", "-1", None),
        ]);
        assert_eq!(f, PgServerFacts::default());
        assert_eq!(duration("3", Some("min")), Some(Duration::from_secs(180)));
        assert_eq!(duration("3", None), None);
    }
}
