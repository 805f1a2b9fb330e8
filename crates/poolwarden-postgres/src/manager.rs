//! [`PgManager`]: the [`Manager`] for tokio-postgres connections.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use poolwarden::{ConnectionFacts, ErrorClass, Manager, Probe, ServerSignal};
use tokio_postgres::Config;

use crate::classify::{classify_error, Classifier};
use crate::conn::PgConn;
use crate::connect::{self, Open};
use crate::error::Error;
use crate::policy::{self, At, Plan, ResetPolicy};
use crate::reset::{self, InitSql};
use crate::verdict::Verdict;

/// The default bound on each command a borrower runs (like the MySQL
/// manager's).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a cancel request may take by default.
pub const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(1);

/// The default [`PgManager::unresponsive_after`]: 1 s (like the MySQL
/// manager's).
pub const DEFAULT_UNRESPONSIVE_AFTER: Duration = Duration::from_secs(1);

/// Opens, checks, resets and classifies PostgreSQL connections for a
/// poolwarden pool.
///
/// ```no_run
/// use poolwarden_postgres::{PgManager, ResetPolicy};
///
/// # fn main() -> Result<(), poolwarden_postgres::Error> {
/// let manager = PgManager::from_url("postgres://app:secret@db:5432/shop")?
///     .init_sql(["SET TIME ZONE 'UTC'"])
///     .reset_policy(ResetPolicy::Auto); // the default
/// # let _ = manager; Ok(()) }
/// ```
///
/// Connections are opened without TLS (`NoTls`; see `rustls` with the
/// `tls-rustls` feature), with TCP keepalive after
/// [`DEFAULT_TCP_KEEPALIVE`](crate::DEFAULT_TCP_KEEPALIVE) unless the
/// config sets another, and `application_name` `poolwarden` unless the
/// config sets one. Each connection's I/O task is spawned on the runtime
/// that opens it and ends (or is aborted) when the connection is dropped.
pub struct PgManager {
    config: Config,
    open: Open,
    policy: ResetPolicy,
    classifier: Option<Arc<Classifier>>,
    report_server_timeout: bool,
}

impl PgManager {
    /// A manager for this tokio-postgres config.
    pub fn new(config: Config) -> Self {
        PgManager {
            config: connect::apply_defaults(config),
            open: Open {
                init: InitSql::default(),
                cancel_timeout: DEFAULT_CANCEL_TIMEOUT,
                command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
                tls: crate::tls::Tls::None,
                verdict: Verdict::new(DEFAULT_UNRESPONSIVE_AFTER),
                watchdog: crate::watchdog::Watchdog::new(),
            },
            policy: ResetPolicy::default(),
            classifier: None,
            report_server_timeout: true,
        }
    }

    /// A manager for a connection string: a URL
    /// (`postgres://user:pass@host:port/db?...`) or `key=value` pairs, as
    /// tokio-postgres parses them.
    ///
    /// # Errors
    /// The string does not parse.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(PgManager::new(url.parse::<Config>()?))
    }

    /// Statements run, in order, on every new connection and again after
    /// every reset that resets settings (the "Clean" sequence and
    /// `DISCARD ALL`), e.g. `SET TIME ZONE 'UTC'`. Sent as one simple
    /// query; a failing statement fails the connect or the reset. They run
    /// before the server facts are read, so a `SET idle_session_timeout`
    /// here is what the pool sees.
    pub fn init_sql<I, S>(mut self, statements: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.open.init = InitSql::new(statements);
        self
    }

    /// What a returned connection goes through; [`ResetPolicy::Auto`] by
    /// default.
    pub fn reset_policy(mut self, policy: ResetPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound every command a borrower runs through [`PgConn`] by this
    /// (besides the checkout's deadline, whichever ends first). A command
    /// still running then fails with [`Error::Deadline`] and is cancelled on
    /// the server. Defaults to [`DEFAULT_COMMAND_TIMEOUT`] (30 s); `None`
    /// leaves only the checkout's deadline. Prevents a borrower waiting
    /// forever on a frozen server or a runaway query (F10).
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.open.command_timeout = timeout;
        self
    }

    /// How long a cancel request (for a command dropped or cut by a
    /// deadline) may take; defaults to [`DEFAULT_CANCEL_TIMEOUT`]. It is
    /// best effort: the connection is not handed out before the server has
    /// finished the command either way. `Duration::ZERO` sends no cancel
    /// requests at all (the next command on the connection then waits for
    /// the dropped one to finish on its own).
    pub fn cancel_timeout(mut self, timeout: Duration) -> Self {
        self.open.cancel_timeout = timeout;
        self
    }

    /// After a command passes its deadline, how long a sign of life asked
    /// of the server on a fresh socket (an `SSLRequest`, which runs
    /// nothing) may take before the manager concludes that the server
    /// stopped answering ([`DEFAULT_UNRESPONSIVE_AFTER`], 1 s, unless
    /// set). Then it black-holes its pool (waiting checkouts fail fast,
    /// connections opened before are retired, one round trip clears it),
    /// whether or not the borrower reports the error; when the server
    /// answers, the command was merely slow and only its connection is
    /// concerned. Prevents checkouts queueing for their whole timeout
    /// behind a frozen server, without treating a slow statement as a dead
    /// server. Only for a single TCP host or a Unix socket without TLS.
    pub fn unresponsive_after(mut self, after: Duration) -> Self {
        self.open.verdict = Verdict::new(after);
        self
    }

    /// Times the manager found the server silent after a command deadline
    /// and told its pool (see [`unresponsive_after`](Self::unresponsive_after)).
    pub fn unresponsive_signals(&self) -> u64 {
        self.open.verdict.signals()
    }

    /// Override the error classification. The closure gets the error and
    /// the default class ([`classify_error`]) and returns the class to use.
    pub fn classify_with<F>(mut self, classify: F) -> Self
    where
        F: Fn(&Error, ErrorClass) -> ErrorClass + Send + Sync + 'static,
    {
        self.classifier = Some(Arc::new(classify));
        self
    }

    /// Whether to tell the pool the server's `idle_session_timeout`
    /// (default `true`), so that it retires or pings idle connections
    /// before the server closes them (F1). Turning it off only makes sense
    /// to reproduce what a pool without this knowledge does.
    pub fn discover_server_timeout(mut self, report: bool) -> Self {
        self.report_server_timeout = report;
        self
    }

    /// Encrypt connections (and cancel requests) with rustls, configured by
    /// `tls` (root certificates, client certificate). Whether TLS is
    /// required follows the config's `sslmode` (`require` refuses a server
    /// without TLS; tokio-postgres's default `prefer` falls back to plain).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use poolwarden_postgres::{rustls, PgManager};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut roots = rustls::RootCertStore::empty();
    /// # let ca_der: Vec<u8> = Vec::new();
    /// roots.add(rustls::pki_types::CertificateDer::from(ca_der))?;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let tls = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let manager = PgManager::from_url("postgres://app@db.internal/shop?sslmode=require")?
    ///     .rustls(tls);
    /// # let _ = manager; Ok(()) }
    /// ```
    #[cfg(feature = "tls-rustls")]
    pub fn rustls(mut self, tls: rustls::ClientConfig) -> Self {
        self.open.tls = crate::tls::Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(tls));
        self
    }

    /// The configured [`command_timeout`](Self::command_timeout)
    /// ([`DEFAULT_COMMAND_TIMEOUT`] unless set; `None`: off).
    pub fn configured_command_timeout(&self) -> Option<Duration> {
        self.open.command_timeout
    }

    /// Whether the manager tells the pool the server's
    /// `idle_session_timeout` (see
    /// [`discover_server_timeout`](Self::discover_server_timeout); `true`
    /// unless set).
    pub fn configured_discover_server_timeout(&self) -> bool {
        self.report_server_timeout
    }

    /// The config new connections are opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The reset policy.
    pub fn policy(&self) -> ResetPolicy {
        self.policy
    }

    /// The init SQL statements, in order.
    pub fn init_statements(&self) -> &[String] {
        self.open.init.statements()
    }

    fn plan(&self, conn: &PgConn, at: At) -> Plan {
        policy::plan(conn.seen(), self.policy, at)
    }

    fn probe_at(&self, conn: &PgConn, at: At) -> Probe {
        if conn.is_closed() {
            return Probe::Closed;
        }
        match self.plan(conn, at) {
            Plan::Nothing => Probe::Clean,
            _ => Probe::NeedsReset,
        }
    }
}

impl fmt::Debug for PgManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgManager")
            .field("target", &connect::describe(&self.config))
            .field("policy", &self.policy)
            .field("init_sql", &self.open.init.statements().len())
            .field("command_timeout", &self.open.command_timeout)
            .field("unresponsive_after", &self.open.verdict.within())
            .field("tls", &self.open.tls)
            .field("classify_with", &self.classifier.is_some())
            .finish()
    }
}

impl Manager for PgManager {
    type Connection = PgConn;
    type Error = Error;

    async fn connect(&self) -> Result<PgConn, Error> {
        connect::open(&self.config, &self.open).await
    }

    /// A bare `Sync` message: the server answers `ReadyForQuery`, no
    /// statement runs (so `pg_stat_statements` does not see it). After an
    /// interrupted command, sent together with its cancel request (a late
    /// cancel cannot hit a `Sync`), and done when both are.
    async fn validate(&self, conn: &mut PgConn) -> Result<(), Error> {
        let (_, synced) = tokio::join!(conn.cancel_interrupted(), conn.inner().check_connection());
        Ok(synced?)
    }

    /// Before a hand-out and after a reset: closed, or not clean by the
    /// tracking (under `Clean`/`Full`, only what the tracking shows).
    fn probe(&self, conn: &mut PgConn) -> Probe {
        self.probe_at(conn, At::Checkout)
    }

    /// At return: closed, or the policy's verdict. Also clears the
    /// borrower's deadline.
    fn probe_returned(&self, conn: &mut PgConn) -> Probe {
        conn.set_deadline(None);
        self.probe_at(conn, At::Return)
    }

    async fn reset(&self, conn: &mut PgConn) -> Result<(), Error> {
        let plan = self.plan(conn, At::Return);
        Ok(reset::run(conn, plan, &self.open.init).await?)
    }

    /// Stores the checkout's deadline ([`Pool::get_until`]) in the
    /// connection: every command the borrower runs through [`PgConn`] ends
    /// by it (and by `command_timeout`), cancelled on the server.
    ///
    /// [`Pool::get_until`]: poolwarden::Pool::get_until
    fn on_hand_out(&self, conn: &mut PgConn, deadline: Option<tokio::time::Instant>) {
        conn.set_deadline(deadline);
    }

    /// Keeps the pool's handle for the "server stopped answering" verdict
    /// (see [`unresponsive_after`](Self::unresponsive_after)).
    fn attach(&self, signal: ServerSignal) {
        self.open.verdict.attach(signal);
    }

    /// Cuts every command in flight on this manager's connections, and any
    /// called later, with [`Error::PoolClosed`]; each is cancelled on the
    /// server (bounded by `cancel_timeout`) when its connection is dropped.
    fn cut_in_flight(&self) {
        self.open.watchdog.cut();
    }

    fn classify(&self, error: &Error) -> ErrorClass {
        let class = classify_error(error);
        match &self.classifier {
            Some(custom) => custom(error, class),
            None => class,
        }
    }

    fn facts(&self, conn: &PgConn) -> ConnectionFacts {
        let mut facts = conn.c.facts.to_connection_facts();
        if !self.report_server_timeout {
            facts.server_idle_timeout = None;
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_debug_hide_the_password() {
        let m = PgManager::from_url("postgres://app:s3cret@db.example:5433/shop")
            .unwrap()
            .init_sql(["SET TIME ZONE 'UTC'"])
            .reset_policy(ResetPolicy::Rollback);
        assert_eq!(m.policy(), ResetPolicy::Rollback);
        assert_eq!(m.init_statements(), ["SET TIME ZONE 'UTC'"]);
        assert_eq!(
            m.configured_command_timeout(),
            Some(DEFAULT_COMMAND_TIMEOUT)
        );
        assert!(m.configured_discover_server_timeout());
        let m = m.command_timeout(None).discover_server_timeout(false);
        assert_eq!(m.configured_command_timeout(), None);
        assert!(!m.configured_discover_server_timeout());
        let text = format!("{m:?}");
        assert!(
            text.contains("db.example") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_url_is_one_error_without_the_password() {
        let e = PgManager::from_url("postgres://app:s3cret@db:notaport/shop").unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn classify_with_overrides() {
        let m = PgManager::from_url("postgres://app@127.0.0.1/shop")
            .unwrap()
            .classify_with(|_, default| match default {
                ErrorClass::Broken => ErrorClass::Keep,
                other => other,
            });
        let e = Error::Deadline {
            waited: Duration::from_secs(1),
        };
        assert_eq!(m.classify(&e), ErrorClass::Keep);
        assert_eq!(classify_error(&e), ErrorClass::Broken);
    }
}
