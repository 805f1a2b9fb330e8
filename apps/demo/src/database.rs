//! Reaching the database: the URL the user gave, or, only for the default
//! URL on a machine with no server, a private one (with a banner saying its
//! data is thrown away); then the pool and the schema.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use poolwarden::redact::Redactor;
use poolwarden::{Pool, PoolConfig, StartError};
use poolwarden_mysql::MySqlManager;
use poolwarden_testkit::MariaDb;

use crate::schema;

/// The demo's pool type.
pub(crate) type DemoPool = Pool<MySqlManager>;

/// Why the database could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// `url` and `reason` are redacted (a parser's message may quote the
    /// password).
    #[error("invalid database URL {url}: {reason}; fix --database-url, DATABASE_URL or database_url in the config file")]
    Url { url: String, reason: String },
    #[error("nothing answers at {addr}, the database given by --database-url, DATABASE_URL or the config file; start that server or fix the URL")]
    Unreachable { addr: String },
    #[error("nothing answered at {addr}, and starting a private MariaDB failed: {source}")]
    PrivateServer {
        addr: String,
        source: poolwarden_testkit::TestkitError,
    },
    #[error("cannot open the pool")]
    Pool(#[from] StartError),
    #[error("cannot create the schema")]
    Schema(#[source] mysql_async::Error),
    #[error("cannot check out a connection for the schema")]
    Checkout(#[source] poolwarden::PoolError),
}

/// The database in use; keeps a private server alive while it lives.
pub(crate) struct Database {
    pub(crate) pool: DemoPool,
    pub(crate) url: String,
    /// Set when the demo started its own server.
    pub(crate) private: Option<MariaDb>,
}

/// Whether something accepts TCP connections at host:port.
async fn answers(host: &str, port: u16) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    for addr in addrs {
        let probe = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
            return true;
        }
    }
    false
}

fn is_loopback(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .map(|mut a| a.all(|a: SocketAddr| a.ip().is_loopback()))
        .unwrap_or(false)
}

/// Start a private MariaDB server (blocking; run off the runtime).
pub(crate) async fn start_private(
    args: Vec<String>,
) -> Result<MariaDb, poolwarden_testkit::TestkitError> {
    tokio::task::spawn_blocking(move || MariaDb::builder().args(args).start())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The error for a URL that does not parse, with nothing secret in it.
fn bad_url(url: &str, source: &dyn std::fmt::Display) -> DbError {
    let r = Redactor::for_url(url);
    DbError::Url {
        url: format!("{:?}", r.text(url)),
        reason: r.text(&source.to_string()),
    }
}

/// Reach the server at `url` and open the pool (failing fast on bad
/// settings), then create the schema. When `given` is false (`url` is the
/// default) and nothing answers on its loopback address, a private MariaDB
/// is started instead, announced by a banner; a URL the user gave is used
/// or the demo fails to start.
pub(crate) async fn open(url: &str, given: bool, pool: PoolConfig) -> Result<Database, DbError> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| bad_url(url, &e))?;
    let (host, port) = (opts.ip_or_hostname().to_owned(), opts.tcp_port());
    let mut url = url.to_owned();
    let mut private = None;
    if !answers(&host, port).await {
        let addr = format!("{host}:{port}");
        if given || !is_loopback(&host, port) {
            return Err(DbError::Unreachable { addr });
        }
        let server = start_private(Vec::new())
            .await
            .map_err(|source| DbError::PrivateServer {
                addr: addr.clone(),
                source,
            })?;
        url = server.url();
        tracing::warn!(
            "\n{line}\n  nothing answers at {addr} (the default database URL), so the demo\n  started a PRIVATE MariaDB server for this run at {url}.\n  ITS DATA IS THROWN AWAY WHEN THE DEMO STOPS. Give --database-url to keep data.\n{line}",
            line = "=".repeat(76)
        );
        private = Some(server);
    }
    let pool = open_pool(&url, pool).await?;
    schema::migrate(&pool).await?;
    Ok(Database { pool, url, private })
}

/// Build a pool for `url` and open its first connection.
pub(crate) async fn open_pool(url: &str, config: PoolConfig) -> Result<DemoPool, DbError> {
    let manager = MySqlManager::from_url(url)
        .map_err(|e| bad_url(url, &e))?
        .init_sql(schema::INIT_SQL.iter().copied());
    Ok(Pool::builder(manager)
        .config(config)
        .build_and_connect()
        .await?)
}
