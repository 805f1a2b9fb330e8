//! [`MySqlManager`]: the [`Manager`] for mysql_async connections.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder};
use poolwarden::{ConnectionFacts, ErrorClass, Manager, Probe, ServerSignal};

use crate::abort::{CutReason, Switch};
use crate::classify::{classify_error, Classifier};
use crate::conn::MySqlConn;
use crate::connect;
use crate::kill::{DeadlineStats, Killer};
use crate::policy::ResetPolicy;
use crate::probe::{self, At, Known};
use crate::reset::{self, InitSql};

/// Opens, checks, resets and classifies MySQL/MariaDB connections for a
/// poolwarden pool.
///
/// ```no_run
/// use poolwarden_mysql::{MySqlManager, ResetPolicy};
///
/// # fn main() -> Result<(), mysql_async::Error> {
/// let manager = MySqlManager::from_url("mysql://app:secret@db:3306/shop")?
///     .init_sql(["SET time_zone = '+00:00'"])
///     .reset_policy(ResetPolicy::Auto); // the default
/// # let _ = manager; Ok(()) }
/// ```
///
/// The pool hands out [`MySqlConn`]s: they offer the driver's query API
/// (`mysql_async::prelude::Queryable`) and dereference to
/// [`mysql_async::Conn`], and they track whether the borrower may have
/// changed session state, so that [`ResetPolicy::Auto`] resets only the
/// connections that need it.
///
/// Connections are opened with [`mysql_async::Conn::new`]: never through mysql_async's own
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
    /// Report `wait_timeout` to the pool (default `true`).
    report_server_timeout: bool,
    /// The per-command bound of every connection.
    command_timeout: Option<Duration>,
    /// Sends `KILL CONNECTION` for timed-out commands; counts them; tells
    /// the pool when the server stopped answering.
    killer: Arc<Killer>,
    /// Flipped by `cut_in_flight` (`Pool::close` at `close_timeout`): cuts
    /// every connection's commands (`abort.rs`).
    switch: Switch,
}

/// The default [`MySqlManager::command_timeout`]: 30 s.
///
/// Why 30 s: it must be safe to adopt, so far above what an OLTP statement
/// takes (a statement running 30 s on a pooled connection is far more often
/// a frozen server, a black-holed route or a lock pile-up than useful work),
/// yet below the 60 s at which common HTTP load balancers and clients give
/// up, so that the pool answers (and frees the connection, and stops the
/// server's work) before the caller has walked away. Reports, migrations and
/// batch jobs raise it for their manager, their checkout
/// ([`MySqlConn::set_command_timeout`]) or one call
/// ([`MySqlConn::with_timeout`]); request handlers get a shorter bound from
/// the request's deadline (`Pool::get_until`).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`MySqlManager::kill_timeout`]: 5 s.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The default [`MySqlManager::unresponsive_after`]: 1 s. Far above a
/// loopback or LAN connect plus one round trip, yet short enough that
/// checkouts waiting on a frozen server fail fast soon after its first
/// command deadline.
pub const DEFAULT_UNRESPONSIVE_AFTER: Duration = Duration::from_secs(1);

impl MySqlManager {
    /// A manager for these connection options.
    pub fn new(opts: impl Into<Opts>) -> Self {
        let opts = connect::apply_defaults(opts.into(), false);
        MySqlManager {
            killer: Killer::new(
                opts.clone(),
                DEFAULT_KILL_TIMEOUT,
                DEFAULT_UNRESPONSIVE_AFTER,
            ),
            switch: Switch::root(),
            opts,
            init: InitSql::default(),
            policy: ResetPolicy::default(),
            classifier: None,
            report_server_timeout: true,
            command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
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

    /// What a returned connection goes through; [`ResetPolicy::Auto`] by
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

    /// Whether to tell the pool the server's `wait_timeout` (default `true`),
    /// so that it retires idle connections before the server closes them and
    /// warns when a checkout is held near it (F1, F6). Turning it off only
    /// makes sense to reproduce what a pool without this knowledge does (the
    /// demo's `replay-incident`).
    pub fn discover_server_timeout(mut self, report: bool) -> Self {
        self.report_server_timeout = report;
        self
    }

    /// TCP keepalive idle time for new connections (`None` turns it off).
    pub fn tcp_keepalive(mut self, keepalive: Option<Duration>) -> Self {
        self.opts = OptsBuilder::from_opts(self.opts)
            .tcp_keepalive(keepalive)
            .into();
        let (timeout, answer_within) = (self.killer.timeout(), self.killer.answer_within());
        self.with_killer(timeout, answer_within)
    }

    /// Let mysql_async reconnect through the server's Unix socket after a TCP
    /// connect to a loopback address (its `prefer_socket`). Off by default:
    /// it opens a second connection, bypasses TCP proxies and TCP keepalive.
    pub fn prefer_socket(mut self, prefer: bool) -> Self {
        self.opts = OptsBuilder::from_opts(self.opts)
            .prefer_socket(prefer)
            .into();
        let (timeout, answer_within) = (self.killer.timeout(), self.killer.answer_within());
        self.with_killer(timeout, answer_within)
    }

    /// The longest any one command a borrower runs may take
    /// ([`DEFAULT_COMMAND_TIMEOUT`], 30 s, unless set; see there for why);
    /// `None` bounds commands only by the checkout's deadline, if any.
    ///
    /// Past it the command fails with a [`CommandTimeout`] error, its
    /// connection is discarded (a frozen server's late answer must not
    /// reach the next command) and the server is told to stop the work
    /// ([`kill_timeout`](Self::kill_timeout)). A checkout carrying an
    /// earlier deadline (`Pool::get_until`) bounds its commands by that.
    /// Prevents a borrower hanging for ever on a server that stopped
    /// answering while its socket stays open (F10).
    ///
    /// [`CommandTimeout`]: crate::CommandTimeout
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long after a command's deadline the manager keeps trying to tell
    /// the server to stop it (`KILL CONNECTION <id>` over a short-lived side
    /// connection, off the caller's path); 5 s by default
    /// ([`DEFAULT_KILL_TIMEOUT`]). A server frozen longer than this gets no
    /// kill; it ends the session when it notices the client left. Counted
    /// in [`deadline_stats`](Self::deadline_stats).
    pub fn kill_timeout(self, timeout: Duration) -> Self {
        let answer_within = self.killer.answer_within();
        self.with_killer(timeout, answer_within)
    }

    /// How long the side connection sent to kill a timed-out command may
    /// take to answer (connect and `KILL`) before the manager concludes
    /// that the server stopped answering ([`DEFAULT_UNRESPONSIVE_AFTER`],
    /// 1 s, unless set). Then it black-holes its pool
    /// ([`ErrorClass::Unresponsive`]'s reaction: waiting checkouts fail
    /// fast, connections opened before are retired, one round trip clears
    /// it), whether or not the borrower reports the error; when the kill
    /// is answered in time, the command was merely slow on a live server
    /// and only its connection goes. Prevents checkouts queueing for
    /// their whole timeout behind a frozen server, without treating a
    /// slow statement as a dead server. Counted in
    /// [`deadline_stats`](Self::deadline_stats) (`unresponsive_signals`).
    pub fn unresponsive_after(self, after: Duration) -> Self {
        let timeout = self.killer.timeout();
        self.with_killer(timeout, after)
    }

    /// A new killer for the current options (its side connections use
    /// them too).
    fn with_killer(mut self, timeout: Duration, answer_within: Duration) -> Self {
        self.killer = Killer::new(self.opts.clone(), timeout, answer_within);
        self
    }

    /// The configured [`unresponsive_after`](Self::unresponsive_after).
    pub fn configured_unresponsive_after(&self) -> Duration {
        self.killer.answer_within()
    }

    /// Cut the commands in flight on this manager's connections (and the
    /// commands called on them later) with `reason`.
    pub(crate) fn cut_all(&self, reason: CutReason) {
        self.switch.flip(reason);
    }

    /// Open a connection whose commands `abort` (a switch under this
    /// manager's) can cut; the cluster manager passes its node's.
    pub(crate) async fn connect_under(
        &self,
        abort: &Switch,
    ) -> Result<MySqlConn, mysql_async::Error> {
        let conn = connect::open(&self.opts, &self.init).await?;
        Ok(conn.with_deadlines(
            self.command_timeout,
            Arc::clone(&self.killer),
            abort.child(),
        ))
    }

    /// This manager's switch, for the cluster manager's node switches.
    pub(crate) fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The configured [`command_timeout`](Self::command_timeout).
    pub fn configured_command_timeout(&self) -> Option<Duration> {
        self.command_timeout
    }

    /// The configured [`kill_timeout`](Self::kill_timeout).
    pub fn configured_kill_timeout(&self) -> Duration {
        self.killer.timeout()
    }

    /// Whether the manager tells the pool the server's `wait_timeout` (see
    /// [`discover_server_timeout`](Self::discover_server_timeout); `true`
    /// unless set).
    pub fn configured_discover_server_timeout(&self) -> bool {
        self.report_server_timeout
    }

    /// Commands that passed their deadline and what became of their kills,
    /// since the manager was built. Also recorded through the `metrics`
    /// facade (feature `metrics`) as [`METRIC_COMMAND_TIMEOUTS`] and
    /// [`METRIC_KILLS`].
    ///
    /// [`METRIC_COMMAND_TIMEOUTS`]: crate::METRIC_COMMAND_TIMEOUTS
    /// [`METRIC_KILLS`]: crate::METRIC_KILLS
    pub fn deadline_stats(&self) -> DeadlineStats {
        self.killer.stats()
    }

    /// The options new connections are opened with.
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
            .field("command_timeout", &self.command_timeout)
            .field("unresponsive_after", &self.killer.answer_within())
            .finish()
    }
}

impl MySqlManager {
    /// The probe's verdict on `conn`, for the pool's probe `at`.
    fn probe_at(&self, conn: &mut MySqlConn, at: At) -> Probe {
        if conn.is_cut_off() {
            // A command passed its deadline or was cut: whatever the
            // driver shows, its answer may still arrive.
            return Probe::Corrupt;
        }
        let wire = probe::wire(&mut conn.inner);
        let session = conn.session();
        let known = Known {
            baseline_autocommit: conn.autocommit,
            dirty: conn.tracker.is_dirty(),
        };
        probe::decide(wire, session, self.policy, known, at)
    }
}

impl Manager for MySqlManager {
    type Connection = MySqlConn;
    type Error = mysql_async::Error;

    async fn connect(&self) -> Result<MySqlConn, mysql_async::Error> {
        self.connect_under(&self.switch).await
    }

    /// `COM_PING`.
    fn validate(
        &self,
        conn: &mut MySqlConn,
    ) -> impl Future<Output = Result<(), mysql_async::Error>> + Send {
        conn.tracker.live();
        conn.inner.ping()
    }

    /// At checkout and after a reset: the protocol state, then (except under
    /// [`ResetPolicy::None`]) an open transaction or a changed `autocommit`,
    /// and under [`ResetPolicy::Auto`] and [`ResetPolicy::Full`] a dirty
    /// connection, count as not clean.
    fn probe(&self, conn: &mut MySqlConn) -> Probe {
        self.probe_at(conn, At::Checkout)
    }

    /// At return: the protocol state, then the policy (see [`ResetPolicy`]).
    fn probe_returned(&self, conn: &mut MySqlConn) -> Probe {
        self.probe_at(conn, At::Return)
    }

    async fn reset(&self, conn: &mut MySqlConn) -> Result<(), mysql_async::Error> {
        let rollback_suffices = match self.policy {
            ResetPolicy::None => return Ok(()),
            ResetPolicy::Rollback => true,
            // Full trusts no tracking: whatever the borrower did, the whole
            // session is reset.
            ResetPolicy::Full => false,
            // Nothing but a transaction (or a changed autocommit) to undo: a
            // ROLLBACK is cheaper and keeps the statement cache.
            ResetPolicy::Auto => !conn.tracker.is_dirty(),
        };
        if rollback_suffices {
            conn.tracker.live();
            reset::rollback(&mut conn.inner, conn.autocommit).await
        } else {
            reset::full(&mut conn.inner, &self.init).await?;
            conn.tracker.reset();
            Ok(())
        }
    }

    fn classify(&self, error: &mysql_async::Error) -> ErrorClass {
        let class = classify_error(error);
        match &self.classifier {
            Some(custom) => custom(error, class),
            None => class,
        }
    }

    /// The checkout's deadline bounds the borrower's commands (with the
    /// command timeout: the earlier of the two, per command); the previous
    /// borrower's `set_command_timeout`/`set_deadline` are forgotten.
    fn on_hand_out(&self, conn: &mut MySqlConn, deadline: Option<tokio::time::Instant>) {
        conn.deadlines.hand_out(deadline);
    }

    /// Keeps the pool's handle: the kill worker black-holes the pool
    /// through it when the server stops answering (see
    /// [`unresponsive_after`](Self::unresponsive_after)).
    fn attach(&self, signal: ServerSignal) {
        self.killer.attach(signal);
    }

    /// Cuts every command in flight on this manager's connections, and any
    /// called later, with a [`CommandCut`](crate::CommandCut) saying the
    /// pool closed; their kills are queued (best effort).
    fn cut_in_flight(&self) {
        self.cut_all(CutReason::PoolClosed);
    }

    fn facts(&self, conn: &MySqlConn) -> ConnectionFacts {
        let mut facts = conn.facts.clone();
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
    fn deadline_settings_and_their_defaults() {
        let m = MySqlManager::new(OptsBuilder::default());
        assert_eq!(
            m.configured_command_timeout(),
            Some(DEFAULT_COMMAND_TIMEOUT)
        );
        assert_eq!(m.configured_kill_timeout(), DEFAULT_KILL_TIMEOUT);
        let m = m
            .command_timeout(None)
            .kill_timeout(Duration::from_secs(1))
            .tcp_keepalive(None);
        assert_eq!(m.configured_command_timeout(), None);
        assert_eq!(m.configured_kill_timeout(), Duration::from_secs(1));
        assert_eq!(m.deadline_stats(), DeadlineStats::default());
        assert!(format!("{m:?}").contains("command_timeout: None"));
    }

    #[test]
    fn the_server_timeout_is_reported_unless_turned_off() {
        let m = MySqlManager::new(OptsBuilder::default());
        assert!(m.configured_discover_server_timeout());
        let m = m.discover_server_timeout(false);
        assert!(!m.configured_discover_server_timeout());
        let m = m.discover_server_timeout(true);
        assert!(m.configured_discover_server_timeout());
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
    fn auto_is_the_default_policy() {
        // `probe`/`reset` need a server; see tests/mariadb.rs.
        let m = MySqlManager::new(OptsBuilder::default());
        assert_eq!(m.policy(), ResetPolicy::Auto);
        assert_eq!(ResetPolicy::default(), ResetPolicy::Auto);
    }
}
