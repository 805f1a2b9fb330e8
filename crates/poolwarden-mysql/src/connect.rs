//! Connection options the manager applies on top of the user's, and opening
//! one connection.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::conn::MySqlConn;
use crate::facts;
use crate::probe::Session;
use crate::reset::InitSql;

/// TCP keepalive idle time applied when the options set none (F10).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The user's options with the manager's defaults: TCP keepalive unless set,
/// and `prefer_socket` as the manager says.
///
/// mysql_async's `prefer_socket` defaults to `true`: after connecting over
/// TCP to a loopback address it asks for `@@socket` and reconnects through
/// the Unix socket. That costs a second connection, silently bypasses any TCP
/// proxy in front of the server (fault-injection proxies in tests included)
/// and drops TCP keepalive. The manager turns it off unless asked.
pub(crate) fn apply_defaults(opts: Opts, prefer_socket: bool) -> Opts {
    let keepalive = opts.tcp_keepalive().or(Some(DEFAULT_TCP_KEEPALIVE));
    OptsBuilder::from_opts(opts)
        .tcp_keepalive(keepalive)
        .prefer_socket(prefer_socket)
        .into()
}

/// Whether a connection URL sets `name=` in its query string.
pub(crate) fn url_sets(url: &str, name: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    })
}

/// Open a connection (never through mysql_async's own pool), run init SQL,
/// and read the server facts.
pub(crate) async fn open(opts: &Opts, init: &InitSql) -> mysql_async::Result<MySqlConn> {
    let mut conn = Conn::new(opts.clone()).await?;
    init.run(&mut conn).await?;
    let facts = facts::read(&mut conn).await?;
    if conn.last_ok_packet().is_none() {
        // The facts query failed: get a status on record, so the first probe
        // does not mistake the error for an open transaction.
        conn.ping().await?;
    }
    let autocommit = Session::of(&conn).autocommit().unwrap_or(true);
    Ok(MySqlConn::new(conn, facts, autocommit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keepalive_and_no_socket_hop() {
        let opts = apply_defaults(Opts::from_url("mysql://u@10.0.0.1/db").unwrap(), false);
        assert_eq!(opts.tcp_keepalive(), Some(DEFAULT_TCP_KEEPALIVE));
        assert!(!opts.prefer_socket());
        let opts = apply_defaults(
            Opts::from_url("mysql://u@10.0.0.1/db?tcp_keepalive=5000").unwrap(),
            true,
        );
        assert_eq!(opts.tcp_keepalive(), Some(Duration::from_secs(5)));
        assert!(opts.prefer_socket());
    }

    #[test]
    fn url_parameters() {
        assert!(url_sets("mysql://h/db?prefer_socket=true", "prefer_socket"));
        assert!(url_sets(
            "mysql://h/db?a=1&prefer_socket=false",
            "prefer_socket"
        ));
        assert!(!url_sets(
            "mysql://h/db?not_prefer_socket=1",
            "prefer_socket"
        ));
        assert!(!url_sets("mysql://h/db", "prefer_socket"));
    }
}
