//! MySQL and MariaDB through `mysql_async`.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::read::{io_error, no_answer, parse_u64};
use super::{Flavor, ServerFacts, Target};
use crate::error::DoctorError;

/// MariaDB's and MySQL's error codes we give words to, from their
/// owner (`poolwarden-mysql`).
use poolwarden_mysql::codes::{
    ACCESS_DENIED as ER_ACCESS_DENIED, ACCESS_DENIED_NO_PASSWORD as ER_ACCESS_DENIED_NO_PASSWORD,
    DB_ACCESS_DENIED as ER_DBACCESS_DENIED, TOO_MANY_CONNECTIONS as ER_CON_COUNT,
    TOO_MANY_USER_CONNECTIONS as ER_TOO_MANY_USER_CONNECTIONS, UNKNOWN_DATABASE as ER_BAD_DB,
};

pub(super) async fn read(target: &Target, timeout: Duration) -> Result<ServerFacts, DoctorError> {
    let mut conn = connect(target, timeout).await?;
    let read = tokio::time::timeout(timeout, read_on(&mut conn)).await;
    // Close cleanly either way, so the doctor never counts as an aborted client.
    let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
    match read {
        Err(_) => Err(no_answer(timeout)),
        Ok(r) => r.map_err(|e| DoctorError::Query(e.to_string())),
    }
}

/// Connects to `target` over TCP within `timeout`; the error says why not.
pub(crate) async fn connect(target: &Target, timeout: Duration) -> Result<Conn, DoctorError> {
    let opts = Opts::from_url(target.url.as_str()).map_err(|e| DoctorError::BadUrl {
        url: target.redacted(),
        reason: e.to_string(),
    })?;
    // Diagnose over TCP, as given: do not switch to a local socket.
    let opts = OptsBuilder::from_opts(opts).prefer_socket(false);
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Err(_) => Err(DoctorError::Timeout {
            addr: target.addr(),
            timeout,
        }),
        Ok(Err(e)) => Err(classify(target, e)),
        Ok(Ok(c)) => Ok(c),
    }
}

async fn read_on(conn: &mut Conn) -> mysql_async::Result<ServerFacts> {
    const VARS: &str =
        "('wait_timeout','interactive_timeout','max_connections','max_allowed_packet')";
    let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
    let version = version.unwrap_or_default();
    let session: HashMap<String, String> = conn
        .query::<(String, String), _>(format!(
            "SHOW SESSION VARIABLES WHERE Variable_name IN {VARS}"
        ))
        .await?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let global: HashMap<String, String> = conn
        .query::<(String, String), _>(format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN {VARS}"
        ))
        .await?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let status: HashMap<String, String> = conn
        .query::<(String, String), _>(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected','Max_used_connections',\
             'Aborted_clients','Aborted_connects','Connections','Uptime')",
        )
        .await?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let sv = |k: &str| session.get(k).and_then(|v| parse_u64(v));
    let secs = |v: Option<u64>| v.map(Duration::from_secs);
    let gv = |k: &str| global.get(k).and_then(|v| parse_u64(v));
    let st = |k: &str| status.get(k).and_then(|v| parse_u64(v));
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    // Tries COM_RESET_CONNECTION where the version has it (MySQL >= 5.7.3,
    // MariaDB >= 10.2.4); `false` means the version lacks it.
    let reset_connection = match conn.reset().await {
        Ok(supported) => Some(supported),
        Err(mysql_async::Error::Server(_)) => Some(false),
        Err(e) => return Err(e),
    };
    Ok(ServerFacts {
        flavor,
        version,
        wait_timeout: secs(sv("wait_timeout")),
        wait_timeout_global: secs(gv("wait_timeout")),
        interactive_timeout: secs(sv("interactive_timeout")),
        interactive_timeout_global: secs(gv("interactive_timeout")),
        max_connections: gv("max_connections"),
        max_allowed_packet: gv("max_allowed_packet").or(sv("max_allowed_packet")),
        connected: st("threads_connected"),
        max_used_connections: st("max_used_connections"),
        connections: st("connections"),
        aborted_clients: st("aborted_clients"),
        aborted_connects: st("aborted_connects"),
        uptime: st("uptime"),
        reset_connection,
        ..ServerFacts::default()
    })
}

fn classify(target: &Target, e: mysql_async::Error) -> DoctorError {
    use mysql_async::{Error, IoError};
    match e {
        Error::Io(IoError::Io(io)) => io_error(target, &io),
        Error::Server(s) => match s.code {
            ER_ACCESS_DENIED | ER_ACCESS_DENIED_NO_PASSWORD => DoctorError::AccessDenied {
                user: target.user(),
            },
            ER_BAD_DB | ER_DBACCESS_DENIED => DoctorError::UnknownDatabase {
                database: target.database(),
            },
            ER_CON_COUNT | ER_TOO_MANY_USER_CONNECTIONS => DoctorError::TooManyConnections {
                addr: target.addr(),
            },
            _ => DoctorError::Server {
                addr: target.addr(),
                message: format!("{} (error {})", s.message, s.code),
            },
        },
        Error::Url(u) => DoctorError::BadUrl {
            url: target.redacted(),
            reason: u.to_string(),
        },
        Error::Driver(mysql_async::DriverError::ConnectionClosed) => DoctorError::Unreachable {
            addr: target.addr(),
            reason: "the server closed the connection during the handshake".to_owned(),
        },
        other => DoctorError::Server {
            addr: target.addr(),
            message: other.to_string(),
        },
    }
}
