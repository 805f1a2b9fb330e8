//! Reaching the database: the URL the user gave, or, only for the default
//! URL on a machine with no server, a private MariaDB (with a banner saying
//! its data is thrown away); then the pool and the schema. The URL's scheme
//! picks the backend ([`Backend`]): `mysql://` / `mariadb://` or
//! `postgres://` / `postgresql://`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use poolwarden::redact::Redactor;
use poolwarden::{Pool, PoolConfig, StartError};
use poolwarden_testkit::{MariaDb, Postgres};

use crate::schema;
use crate::store::{Backend, QueryError, Store};

/// Why the database could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
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
    #[error("the database URL's scheme is not mysql://, mariadb://, postgres:// or postgresql://; fix --database-url, DATABASE_URL or database_url in the config file")]
    Scheme,
    #[error("cannot create the schema")]
    Schema(#[source] QueryError),
    #[error("cannot check out a connection for the schema")]
    Checkout(#[source] poolwarden::PoolError),
}

/// The database in use; keeps a private server alive while it lives.
pub(crate) struct Database<B: Store> {
    pub(crate) pool: Pool<B>,
    pub(crate) url: String,
    /// Set when the demo started its own server.
    pub(crate) private: Option<PrivateServer>,
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

/// A private server of either kind (the replay's and the load tool's);
/// killed, its data removed, when dropped.
pub(crate) enum PrivateServer {
    MariaDb(MariaDb),
    Postgres(Postgres),
}

impl PrivateServer {
    /// A private server for `backend`; with `idle_timeout`, it closes
    /// sessions idle that long (`wait_timeout` on MariaDB,
    /// `idle_session_timeout` on PostgreSQL).
    ///
    /// # Errors
    /// The server would not start.
    pub(crate) async fn start(
        backend: Backend,
        idle_timeout: Option<Duration>,
    ) -> Result<PrivateServer, poolwarden_testkit::TestkitError> {
        let secs = idle_timeout.map(|t| t.as_secs().max(1));
        tokio::task::spawn_blocking(move || match backend {
            Backend::MySql => {
                let args = secs.map_or_else(Vec::new, |s| {
                    vec![
                        format!("--wait-timeout={s}"),
                        format!("--interactive-timeout={s}"),
                    ]
                });
                MariaDb::builder()
                    .args(args)
                    .start()
                    .map(PrivateServer::MariaDb)
            }
            Backend::Postgres => {
                let mut b = Postgres::builder();
                if let Some(s) = secs {
                    b = b.setting("idle_session_timeout", &format!("{s}s"));
                }
                b.start().map(PrivateServer::Postgres)
            }
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Its URL (the superuser's, on its test database).
    pub(crate) fn url(&self) -> String {
        match self {
            PrivateServer::MariaDb(s) => s.url(),
            PrivateServer::Postgres(s) => {
                s.url_for(Postgres::SUPERUSER, "", Postgres::TEST_DATABASE)
            }
        }
    }
}

/// The error for a URL that does not parse, with nothing secret in it.
fn bad_url(url: &str, reason: &str) -> OpenError {
    let r = Redactor::for_url(url);
    OpenError::Url {
        url: format!("{:?}", r.text(url)),
        reason: r.text(reason),
    }
}

/// The backend `url` is for.
///
/// # Errors
/// A scheme the demo does not serve.
pub(crate) fn backend(url: &str) -> Result<Backend, OpenError> {
    Backend::of_url(url).ok_or(OpenError::Scheme)
}

/// Reach the server at `url` and open the pool (failing fast on bad
/// settings), then create the schema. When `given` is false (`url` is the
/// default) and nothing answers on its loopback address, a private MariaDB
/// is started instead, announced by a banner; a URL the user gave is used
/// or the demo fails to start.
pub(crate) async fn open<B: Store>(
    url: &str,
    given: bool,
    pool: PoolConfig,
) -> Result<Database<B>, OpenError> {
    let (host, port) = B::address(url).map_err(|e| bad_url(url, &e))?;
    let mut url = url.to_owned();
    let mut private = None;
    if !answers(&host, port).await {
        let addr = format!("{host}:{port}");
        // NOTE: only the default URL (MariaDB on loopback) may fall back.
        if given || !is_loopback(&host, port) || B::BACKEND != Backend::MySql {
            return Err(OpenError::Unreachable { addr });
        }
        let server = PrivateServer::start(Backend::MySql, None)
            .await
            .map_err(|source| OpenError::PrivateServer {
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
    let pool = open_pool::<B>(&url, pool).await?;
    schema::migrate(&pool).await?;
    Ok(Database { pool, url, private })
}

/// Build a pool for `url` and open its first connection.
pub(crate) async fn open_pool<B: Store>(
    url: &str,
    config: PoolConfig,
) -> Result<Pool<B>, OpenError> {
    let manager = B::manager(url).map_err(|e| bad_url(url, &e))?;
    Ok(Pool::builder(manager)
        .config(config)
        .build_and_connect()
        .await?)
}
