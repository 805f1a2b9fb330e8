//! What the server says about itself: version, idle timeouts, connection
//! limits and counters. Read once over one connection, which is closed
//! cleanly afterwards (so the doctor itself never adds to `Aborted_clients`).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Serialize, Serializer};
use url::Url;

use crate::error::DoctorError;

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

/// The facts read from the server. Timeouts are serialised as seconds;
/// counters are `None` where the server does not have them.
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
    /// Postgres: `tcp_keepalives_idle` (zero: the OS default).
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) tcp_keepalives_idle: Option<Duration>,
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

/// A parsed database URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL, scheme normalised (`mariadb://` → `mysql://`).
    url: Url,
    /// MySQL or Postgres.
    pub(crate) postgres: bool,
}

impl Target {
    /// Parses and checks a database URL.
    pub(crate) fn parse(raw: &str) -> Result<Target, DoctorError> {
        let bad = |reason: &str| DoctorError::BadUrl {
            url: redact_str(raw),
            reason: reason.to_owned(),
        };
        let expected = "expected mysql://USER:PASSWORD@HOST:PORT/DATABASE or postgres://…";
        let mut url = Url::parse(raw).map_err(|e| bad(&format!("{e}; {expected}")))?;
        let postgres = match url.scheme() {
            "mysql" => false,
            "mariadb" => {
                // `Url::set_scheme` refuses nothing between two non-special schemes.
                let rest = &raw["mariadb".len()..];
                url = Url::parse(&format!("mysql{rest}")).map_err(|e| bad(&e.to_string()))?;
                false
            }
            "postgres" | "postgresql" => true,
            "http" | "https" => {
                return Err(bad(
                    "this is an HTTP URL; to read a service's /debug/pool use `poolwarden doctor --live URL`",
                ))
            }
            other => return Err(bad(&format!("unsupported scheme '{other}'; {expected}"))),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad(&format!("no host; {expected}")));
        }
        Ok(Target { url, postgres })
    }

    /// The host, for messages.
    pub(crate) fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    /// `host:port`, for messages.
    pub(crate) fn addr(&self) -> String {
        let default = if self.postgres { 5432 } else { 3306 };
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or_default(),
            self.url.port().unwrap_or(default)
        )
    }

    /// The user, percent-decoded; when the URL names none, the name the
    /// messages use (`root` for MySQL, `postgres` for Postgres).
    pub(crate) fn user(&self) -> String {
        let u = decode(self.url.username());
        if !u.is_empty() {
            u
        } else if self.postgres {
            "postgres".to_owned()
        } else {
            "root".to_owned()
        }
    }

    /// The database, percent-decoded (may be empty).
    pub(crate) fn database(&self) -> String {
        decode(self.url.path().trim_start_matches('/'))
    }

    /// The URL with the password replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        redact(&self.url)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        // Cannot fail for URLs that have a password.
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// `raw` with any password replaced by `***` (unchanged if it is no URL).
pub(crate) fn redact_str(raw: &str) -> String {
    Url::parse(raw).map_or_else(|_| raw.to_owned(), |u| redact(&u))
}

/// Connects with a bound of `timeout` and reads the server's facts.
pub(crate) async fn read_facts(
    target: &Target,
    timeout: Duration,
) -> Result<ServerFacts, DoctorError> {
    if target.postgres {
        postgres::read(target, timeout).await
    } else {
        mysql::read(target, timeout).await
    }
}

/// Whether an I/O error is a failed name lookup.
pub(crate) fn is_lookup_failure(e: &std::io::Error) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("lookup") || s.contains("name or service not known") || s.contains("resolve")
}

/// The error for an I/O failure while connecting to `target`.
fn io_error(target: &Target, e: &std::io::Error) -> DoctorError {
    if is_lookup_failure(e) {
        DoctorError::UnknownHost {
            host: target.host(),
        }
    } else {
        DoctorError::Unreachable {
            addr: target.addr(),
            reason: io_reason(e),
        }
    }
}

/// Words for an I/O error, without the "(os error N)" tail.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset by the server".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::TimedOut => "connection timed out".to_owned(),
        K::HostUnreachable => "host unreachable".to_owned(),
        K::NetworkUnreachable => "network unreachable".to_owned(),
        K::AddrNotAvailable => "address not available".to_owned(),
        K::UnexpectedEof => "the server closed the connection during the handshake".to_owned(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

fn secs(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_secs)
}

pub(crate) mod mysql {
    //! MySQL and MariaDB through `mysql_async`.

    use super::*;
    use mysql_async::prelude::Queryable;
    use mysql_async::{Conn, Opts, OptsBuilder};

    /// MariaDB's and MySQL's error codes we give words to, from their
    /// owner (`poolwarden-mysql`).
    use poolwarden_mysql::codes::{
        ACCESS_DENIED as ER_ACCESS_DENIED,
        ACCESS_DENIED_NO_PASSWORD as ER_ACCESS_DENIED_NO_PASSWORD,
        DB_ACCESS_DENIED as ER_DBACCESS_DENIED, TOO_MANY_CONNECTIONS as ER_CON_COUNT,
        TOO_MANY_USER_CONNECTIONS as ER_TOO_MANY_USER_CONNECTIONS, UNKNOWN_DATABASE as ER_BAD_DB,
    };

    pub(super) async fn read(
        target: &Target,
        timeout: Duration,
    ) -> Result<ServerFacts, DoctorError> {
        let mut conn = connect(target, timeout).await?;
        let read = tokio::time::timeout(timeout, read_on(&mut conn)).await;
        // Close cleanly either way, so the doctor never counts as an aborted client.
        let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
        match read {
            Err(_) => Err(DoctorError::Query(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))),
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
}

mod postgres {
    //! PostgreSQL through `tokio-postgres` (no TLS).

    use super::*;
    use tokio_postgres::error::SqlState;
    use tokio_postgres::NoTls;

    pub(super) async fn read(
        target: &Target,
        timeout: Duration,
    ) -> Result<ServerFacts, DoctorError> {
        let mut config: tokio_postgres::Config =
            target
                .url
                .as_str()
                .parse()
                .map_err(|e: tokio_postgres::Error| DoctorError::BadUrl {
                    url: target.redacted(),
                    reason: e.to_string(),
                })?;
        config.connect_timeout(timeout);
        config.application_name("poolwarden-doctor");
        let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await
        {
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
        match read {
            Err(_) => Err(DoctorError::Query(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))),
            Ok(r) => r.map_err(|e| DoctorError::Query(e.to_string())),
        }
    }

    async fn read_on(
        client: &tokio_postgres::Client,
    ) -> Result<ServerFacts, tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT name, setting, COALESCE(unit, '') FROM pg_settings WHERE name IN \
                 ('server_version','idle_session_timeout','idle_in_transaction_session_timeout',\
                 'max_connections','tcp_keepalives_idle','superuser_reserved_connections',\
                 'reserved_connections')",
                &[],
            )
            .await?;
        let settings: HashMap<String, (String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    (r.get::<_, String>(1), r.get::<_, String>(2)),
                )
            })
            .collect();
        let dur = |k: &str| {
            settings.get(k).and_then(|(v, unit)| {
                let n = parse_u64(v)?;
                Some(match unit.as_str() {
                    "ms" => Duration::from_millis(n),
                    "min" => Duration::from_secs(n * 60),
                    _ => Duration::from_secs(n),
                })
            })
        };
        let num = |k: &str| settings.get(k).and_then(|(v, _)| parse_u64(v));
        let connected: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
                &[],
            )
            .await?
            .get(0);
        let started: Option<f64> = client
            .query_one(
                "SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())::float8",
                &[],
            )
            .await?
            .get(0);
        let reserved = match (
            num("superuser_reserved_connections"),
            num("reserved_connections"),
        ) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        Ok(ServerFacts {
            flavor: Flavor::Postgres,
            version: settings
                .get("server_version")
                .map(|(v, _)| v.clone())
                .unwrap_or_default(),
            idle_session_timeout: dur("idle_session_timeout"),
            idle_in_transaction_session_timeout: dur("idle_in_transaction_session_timeout"),
            tcp_keepalives_idle: dur("tcp_keepalives_idle"),
            max_connections: num("max_connections"),
            reserved_connections: reserved,
            connected: u64::try_from(connected).ok(),
            uptime: started.map(|s| s.max(0.0) as u64),
            reset_connection: Some(true),
            ..ServerFacts::default()
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mysql_and_postgres_urls() {
        let t = Target::parse("mysql://u:p%40ss@127.0.0.1:3399/app").unwrap();
        assert!(!t.postgres);
        assert_eq!(t.addr(), "127.0.0.1:3399");
        assert_eq!(t.user(), "u");
        assert_eq!(t.database(), "app");
        assert_eq!(t.redacted(), "mysql://u:***@127.0.0.1:3399/app");

        let t = Target::parse("mariadb://db.internal/app").unwrap();
        assert!(!t.postgres);
        assert_eq!(t.addr(), "db.internal:3306");
        assert_eq!(t.user(), "root");

        let t = Target::parse("postgresql://x@h/d").unwrap();
        assert!(t.postgres);
        assert_eq!(t.addr(), "h:5432");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (raw, word) in [
            ("notaurl", "expected mysql://"),
            ("redis://h:1/0", "unsupported scheme 'redis'"),
            ("http://127.0.0.1:8080/debug/pool", "--live"),
            ("mysql:///db", "no host"),
        ] {
            let e = Target::parse(raw).unwrap_err().to_string();
            assert!(e.starts_with("bad URL"), "{e}");
            assert!(e.contains(word), "{raw}: {e}");
        }
    }

    #[test]
    fn bad_url_message_hides_the_password() {
        let e = Target::parse("redis://u:secret@h/0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

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

    #[test]
    fn io_reasons_read_well() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&e), "connection refused");
    }
}
