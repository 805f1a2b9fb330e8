//! Server facts read once per connection, in one query, after init SQL (so a
//! `SET SESSION wait_timeout = ...` in init SQL is what the pool sees).
//!
//! A non-interactive client (mysql_async never sends `CLIENT_INTERACTIVE`)
//! gets the global `wait_timeout` as its session value at connect, so the
//! session value read here is the idle timeout the server will apply (F1).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use poolwarden::ConnectionFacts;

/// The one query: `@@wait_timeout` (session scope), `@@max_connections`,
/// `VERSION()`.
pub(crate) const FACTS_SQL: &str = "SELECT @@wait_timeout, @@max_connections, VERSION()";

/// Read the facts. A server error (a proxy that hides variables, say) gives
/// unknown facts, not a failed connect; any other error means the connection
/// is unusable and is returned.
pub(crate) async fn read(conn: &mut Conn) -> mysql_async::Result<ConnectionFacts> {
    match conn.query_first::<Row, _>(FACTS_SQL).await {
        Ok(row) => Ok(row.map(|r| parse(&r)).unwrap_or_default()),
        Err(mysql_async::Error::Server(e)) => {
            tracing::debug!(error = %e, "could not read server facts; continuing without them");
            Ok(ConnectionFacts::default())
        }
        Err(e) => Err(e),
    }
}

/// Facts from the row of [`FACTS_SQL`]; unreadable columns stay unknown.
pub(crate) fn parse(row: &Row) -> ConnectionFacts {
    let wait_timeout: Option<u64> = row.get_opt(0).and_then(Result::ok);
    let max_connections: Option<u64> = row.get_opt(1).and_then(Result::ok);
    let version: Option<String> = row.get_opt(2).and_then(Result::ok);
    let mut facts = ConnectionFacts::default();
    facts.server_idle_timeout = wait_timeout
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs);
    facts.max_connections = max_connections.and_then(|n| u32::try_from(n).ok());
    facts.server_version = version;
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::consts::ColumnType;
    use mysql_async::{Column, Value};
    use std::sync::Arc;

    fn row(values: Vec<Value>) -> Row {
        let columns: Arc<[Column]> = (0..values.len())
            .map(|_| Column::new(ColumnType::MYSQL_TYPE_VAR_STRING))
            .collect::<Vec<_>>()
            .into();
        mysql_common::row::new_row(values, columns)
    }

    #[test]
    fn parses_the_text_protocol_row() {
        let f = parse(&row(vec![
            Value::Bytes(b"600".to_vec()),
            Value::Bytes(b"151".to_vec()),
            Value::Bytes(b"10.11.6-MariaDB".to_vec()),
        ]));
        assert_eq!(f.server_idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(f.max_connections, Some(151));
        assert_eq!(f.server_version.as_deref(), Some("10.11.6-MariaDB"));
    }

    #[test]
    fn nulls_and_garbage_are_unknown() {
        let f = parse(&row(vec![
            Value::NULL,
            Value::Bytes(b"lots".to_vec()),
            Value::NULL,
        ]));
        assert_eq!(f, ConnectionFacts::default());
    }
}
