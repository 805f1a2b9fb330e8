//! [`MySqlManager`]: the [`Manager`] for mysql_async connections.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use poolwarden::{ConnectionFacts, ErrorClass, Manager, Probe};

use crate::classify::{classify_error, Classifier};
use crate::connect;
use crate::policy::ResetPolicy;
use crate::probe::{self, Session};
use crate::reset::{self, InitSql};
use crate::state::{Lease, Registry};

/// Opens, checks, resets and classifies `mysql_async::Conn`s for a
/// poolwarden pool.
///
/// ```no_run
/// use poolwarden_mysql::{MySqlManager, ResetPolicy};
///
/// # fn main() -> Result<(), mysql_async::Error> {
/// let manager = MySqlManager::from_url("mysql://app:secret@db:3306/shop")?
///     .init_sql(["SET time_zone = '+00:00'"])
///     .reset_policy(ResetPolicy::Full);
/// # let _ = manager; Ok(()) }
/// ```
///
/// The pool's guard dereferences to [`mysql_async::Conn`], so the driver's
/// whole API stays available to the borrower.
///
/// Connections are opened with [`Conn::new`]: never through mysql_async's own
/// pool, with TCP keepalive on ([`DEFAULT_TCP_KEEPALIVE`] unless the options
/// set one) and mysql_async's `prefer_socket` hop off (see
/// [`prefer_socket`](MySqlManager::prefer_socket)).
///
/// [`DEFAULT_TCP_KEEPALIVE`]: crate::DEFAULT_TCP_KEEPALIVE
pub struct MySqlManager {
    /// The user's options with the manager's defaults applied.
    opts: Opts,
    init: InitSql,
    policy: ResetPolicy,
    classifier: Option<Arc<Classifier>>,
    registry: Registry,
}

impl MySqlManager {
    /// A manager for these connection options.
    pub fn new(opts: impl Into<Opts>) -> Self {
        MySqlManager {
            opts: connect::apply_defaults(opts.into(), false),
            init: InitSql::default(),
            policy: ResetPolicy::default(),
            classifier: None,
            registry: Registry::default(),
        }
    }

    /// A manager for a connection URL (`mysql://user:pass@host:port/db?...`,
    /// mysql_async's URL parameters apply). An explicit `prefer_socket=`
    /// parameter is respected.
    pub fn from_url(url: &str) -> Result<Self, mysql_async::Error> {
        let opts = Opts::from_url(url)?;
        let prefer_socket = opts.prefer_socket();
        let manager = MySqlManager::new(opts);
        Ok(if connect::url_sets(url, "prefer_socket") {
            manager.prefer_socket(prefer_socket)
        } else {
            manager
        })
    }

    /// Statements run, in order, on every new connection and again after
    /// every full reset (which sets session variables back to the server's
    /// global values), for example `SET time_zone = '+00:00'`. They are sent
    /// as one multi-statement query. A failing statement fails the connect
    /// or the reset.
    ///
    /// Unlike mysql_async's own `Opts::init`/`Opts::setup` (which still work,
    /// but run in reverse order), these run in the order given and are
    /// followed by the facts query, so a `SET SESSION wait_timeout` here is
    /// what the pool sees.
    pub fn init_sql<I, S>(mut self, statements: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.init = InitSql::new(statements);
        self
    }

    /// What a returned connection goes through; [`ResetPolicy::Full`] by
    /// default.
    pub fn reset_policy(mut self, policy: ResetPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Override the error classification. The closure gets the error and the
    /// default class ([`classify_error`]) and returns the class to use.
    ///
    /// ```
    /// use poolwarden::ErrorClass;
    /// # let manager = poolwarden_mysql::MySqlManager::new(mysql_async::OptsBuilder::default());
    /// // A proxy answers 1045 while a backend restarts: retry instead of failing.
    /// let manager = manager.classify_with(|err, default| match err {
    ///     mysql_async::Error::Server(e) if e.code == 1045 => ErrorClass::Keep,
    ///     _ => default,
    /// });
    /// ```
    pub fn classify_with<F>(mut self, classify: F) -> Self
    where
        F: Fn(&mysql_async::Error, ErrorClass) -> ErrorClass + Send + Sync + 'static,
    {
        self.classifier = Some(Arc::new(classify));
        self
    }

    /// TCP keepalive idle time for new connections (`None` turns it off).
    pub fn tcp_keepalive(mut self, keepalive: Option<Duration>) -> Self {
        self.opts = OptsBuilder::from_opts(self.opts)
            .tcp_keepalive(keepalive)
            .into();
        self
    }

    /// Let mysql_async reconnect through the server's Unix socket after a TCP
    /// connect to a loopback address (its `prefer_socket`). Off by default:
    /// it opens a second connection, bypasses TCP proxies and TCP keepalive.
    pub fn prefer_socket(mut self, prefer: bool) -> Self {
        self.opts = OptsBuilder::from_opts(self.opts)
            .prefer_socket(prefer)
            .into();
        self
    }

    /// The options new connections are opened with (the `after_connect`
    /// callback aside, which the manager wraps per connection).
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// The reset policy.
    pub fn policy(&self) -> ResetPolicy {
        self.policy
    }

    /// The init SQL statements, in order.
    pub fn init_statements(&self) -> &[String] {
        self.init.statements()
    }
}

impl fmt::Debug for MySqlManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `Opts`' Debug: it prints the password.
        f.debug_struct("MySqlManager")
            .field("host", &self.opts.ip_or_hostname())
            .field("port", &self.opts.tcp_port())
            .field("user", &self.opts.user())
            .field("db", &self.opts.db_name())
            .field("policy", &self.policy)
            .field("init_sql", &self.init.statements().len())
            .field("classify_with", &self.classifier.is_some())
            .field("registry", &self.registry)
            .finish()
    }
}

impl Manager for MySqlManager {
    type Connection = Conn;
    type Error = mysql_async::Error;

    fn connect(&self) -> impl Future<Output = Result<Conn, mysql_async::Error>> + Send {
        connect::open(&self.opts, &self.init, &self.registry)
    }

    /// `COM_PING`. Under [`ResetPolicy::Full`] a validated connection counts
    /// as handed out (the pool validates right before some hand-outs), so
    /// its next probe after the borrow asks for a reset.
    fn validate(
        &self,
        conn: &mut Conn,
    ) -> impl Future<Output = Result<(), mysql_async::Error>> + Send {
        self.registry.with(conn, |s| s.lease = Lease::Lent);
        conn.ping()
    }

    fn probe(&self, conn: &mut Conn) -> Probe {
        let wire = probe::wire(conn);
        let session = Session::of(conn);
        let policy = self.policy;
        self.registry
            .with(conn, |s| {
                probe::decide(wire, session, policy, Some((s.autocommit, &mut s.lease)))
            })
            .unwrap_or_else(|| probe::decide(wire, session, policy, None))
    }

    async fn reset(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        match self.policy {
            ResetPolicy::None => {}
            ResetPolicy::Rollback => {
                let autocommit = self.registry.with(conn, |s| s.autocommit).unwrap_or(true);
                reset::rollback(conn, autocommit).await?;
            }
            ResetPolicy::Full => {
                reset::full(conn, &self.init).await?;
                self.registry.with(conn, |s| s.lease = Lease::AFTER_RESET);
            }
        }
        Ok(())
    }

    fn classify(&self, error: &mysql_async::Error) -> ErrorClass {
        let class = classify_error(error);
        match &self.classifier {
            Some(custom) => custom(error, class),
            None => class,
        }
    }

    fn facts(&self, conn: &Conn) -> ConnectionFacts {
        self.registry.get(conn).map(|s| s.facts).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_debug_hide_the_password() {
        let m = MySqlManager::from_url("mysql://app:s3cret@db.example:3307/shop")
            .unwrap()
            .init_sql(["SET time_zone = '+00:00'"])
            .reset_policy(ResetPolicy::Rollback);
        assert_eq!(m.policy(), ResetPolicy::Rollback);
        assert_eq!(m.init_statements(), ["SET time_zone = '+00:00'"]);
        assert!(!m.opts().prefer_socket());
        let text = format!("{m:?}");
        assert!(
            text.contains("db.example") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn explicit_prefer_socket_in_the_url_is_kept() {
        let m = MySqlManager::from_url("mysql://app@127.0.0.1/shop?prefer_socket=true").unwrap();
        assert!(m.opts().prefer_socket());
    }

    #[test]
    fn classify_with_overrides() {
        let m = MySqlManager::from_url("mysql://app@127.0.0.1/shop")
            .unwrap()
            .classify_with(|_, default| match default {
                ErrorClass::Fatal => ErrorClass::Keep,
                other => other,
            });
        let denied = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1045,
            message: "Access denied".into(),
            state: "28000".into(),
        });
        assert_eq!(m.classify(&denied), ErrorClass::Keep);
        assert_eq!(classify_error(&denied), ErrorClass::Fatal);
    }

    #[test]
    fn unknown_connections_have_no_facts() {
        // `facts`/`probe` on a Conn the manager did not open cannot be tested
        // without a server; see tests/mariadb.rs.
        let m = MySqlManager::new(OptsBuilder::default());
        assert_eq!(m.policy(), ResetPolicy::Full);
    }
}
