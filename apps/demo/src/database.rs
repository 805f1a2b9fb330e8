//! Reaching the database: the configured server, or a private one when
//! nothing answers on a loopback address; then the pool and the schema.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use poolwarden::{Pool, PoolConfig, StartError};
use poolwarden_mysql::MySqlManager;
use poolwarden_testkit::MariaDb;

use crate::schema;

/// The demo's pool type.
pub(crate) type DemoPool = Pool<MySqlManager>;

/// Why the database could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error("invalid database URL {url:?}: {source}")]
    Url {
        url: String,
        source: mysql_async::Error,
    },
    #[error("nothing answers at {addr} and it is not a local address, so no private server can stand in; check --database-url")]
    Unreachable { addr: String },
    #[error("nothing answered at {addr}, and starting a private MariaDB failed: {source}")]
    PrivateServer {
        addr: String,
        source: poolwarden_testkit::TestkitError,
    },
    #[error("cannot open the pool")]
    Pool(#[from] StartError),
    #[error("cannot create the schema: {0}")]
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

/// Where a mysql URL points.
fn address(url: &str) -> Option<(String, u16)> {
    let opts = mysql_async::Opts::from_url(url).ok()?;
    Some((opts.ip_or_hostname().to_owned(), opts.tcp_port()))
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

/// Reach the configured server or start a private one, open the pool
/// (failing fast on bad settings) and create the schema.
pub(crate) async fn open(url: &str, pool: PoolConfig) -> Result<Database, DbError> {
    let (host, port) = address(url).ok_or_else(|| DbError::Url {
        url: url.to_owned(),
        source: mysql_async::Opts::from_url(url)
            .err()
            .map(mysql_async::Error::from)
            .unwrap_or_else(|| mysql_async::Error::Other("no host in URL".into())),
    })?;
    let mut url = url.to_owned();
    let mut private = None;
    if !answers(&host, port).await {
        let addr = format!("{host}:{port}");
        if !is_loopback(&host, port) {
            return Err(DbError::Unreachable { addr });
        }
        tracing::warn!("nothing answers at {addr}: starting a private MariaDB server for the demo (its data is thrown away on exit)");
        let server = start_private(Vec::new())
            .await
            .map_err(|source| DbError::PrivateServer { addr, source })?;
        url = server.url();
        tracing::warn!("private MariaDB server ready at {url}");
        private = Some(server);
    }
    let pool = open_pool(&url, pool).await?;
    schema::migrate(&pool).await?;
    Ok(Database { pool, url, private })
}

/// Build a pool for `url` and open its first connection.
pub(crate) async fn open_pool(url: &str, config: PoolConfig) -> Result<DemoPool, DbError> {
    let manager = MySqlManager::from_url(url).map_err(|source| DbError::Url {
        url: url.to_owned(),
        source,
    })?;
    Ok(Pool::builder(manager)
        .config(config)
        .build_and_connect()
        .await?)
}
