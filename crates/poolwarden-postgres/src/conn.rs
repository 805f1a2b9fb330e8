//! [`PgConn`]: the connection the pool hands out. It wraps a
//! [`tokio_postgres::Client`], watches the SQL that goes through it, and
//! bounds each command by the checkout's deadline.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Client, Row, SimpleQueryMessage, Statement};

use crate::cancel::{self, CancelTarget};
use crate::connect::Open;
use crate::error::Error;
use crate::facts::PgServerFacts;
use crate::sql::{self, Effect};
use crate::task::Task;
use crate::track::{Seen, Tracker};
use crate::verdict::Verdict;
use crate::watchdog::{Ended, Watch};

/// How many statements [`PgConn::prepare_cached`] keeps per connection;
/// when full it starts over.
pub const STATEMENT_CACHE_SIZE: usize = 256;

/// The fraction of the server's `idle_in_transaction_session_timeout` after
/// which a borrower idle inside a transaction is warned in the log (at its
/// next command): 3/4. The server closes the session at the whole of it
/// (F6).
pub const IDLE_IN_TRANSACTION_WARN_FRACTION: f64 = 0.75;

/// A pooled PostgreSQL connection: a [`tokio_postgres::Client`] plus what
/// the manager knows about it.
///
/// The pool's guard dereferences to this type. Its query methods have the
/// driver's names and signatures (`query`, `query_one`, `query_opt`,
/// `execute`, `batch_execute`, `simple_query`, `prepare`), return
/// [`Error`], and:
///
/// * look at the SQL text (see [`may_change_session`]): a borrower who ran
///   only statements that leave no session state behind (`SELECT`,
///   `INSERT`, `BEGIN` ... `COMMIT`) costs no reset; one who ran `SET`,
///   created a temporary table, took an advisory lock or left a
///   transaction open gets the cheapest reset that undoes it;
/// * notice a command dropped before its reply came (its caller gave up,
///   or a deadline cut it): the command is cancelled on the server before
///   the connection runs anything else;
/// * are bounded by the connection's deadline (see
///   [`set_deadline`](Self::set_deadline)) and the manager's
///   `command_timeout`.
///
/// ```no_run
/// # async fn demo(pool: poolwarden::Pool<poolwarden_postgres::PgManager>) -> Result<(), Box<dyn std::error::Error>> {
/// let conn = pool.get().await?;
/// let row = conn.query_one("SELECT $1::INT + 1", &[&41]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// // A statement prepared once per connection and kept across borrowers.
/// let stmt = conn.prepare_cached("SELECT name FROM users WHERE id = $1").await?;
/// let rows = conn.query(&stmt, &[&7_i64]).await?;
/// # let _ = rows; Ok(()) }
/// ```
///
/// It does not dereference to the client: anything the wrapper cannot
/// watch (the raw [`client`](Self::client), a driver
/// [`transaction`](Self::transaction), `copy_in`, `query_raw`) counts as
/// having changed anything: the connection gets the full reset
/// (`DISCARD ALL`) on return.
///
/// [`may_change_session`]: crate::may_change_session
pub struct PgConn {
    /// Not boxed here: the pool boxes every connection once when it opens
    /// (its `Live`), so the several moves per checkout move a pointer.
    pub(crate) c: Conn,
}

/// What a [`PgConn`] holds.
pub(crate) struct Conn {
    client: Client,
    pub(crate) tracker: Tracker,
    pub(crate) facts: PgServerFacts,
    task: Task,
    token: CancelToken,
    pub(crate) target: CancelTarget,
    pub(crate) cancel_timeout: Duration,
    command_timeout: Option<Duration>,
    deadline: Option<Instant>,
    statements: Mutex<HashMap<String, PgStatement>>,
    /// When the last command finished, for the idle-in-transaction warning.
    last_done: Mutex<Option<std::time::Instant>>,
    /// Asked after a deadline: is the server alive (`verdict.rs`)?
    verdict: Arc<Verdict>,
    /// Bounds each command by its deadline, and cuts it when the pool's
    /// `close()` reaches `close_timeout` (`watchdog.rs`).
    watch: Arc<Watch>,
}

/// A statement prepared through [`PgConn::prepare`] or
/// [`PgConn::prepare_cached`]: the driver's [`Statement`] plus what its
/// text may do to the session. Dereferences to [`Statement`].
#[derive(Clone)]
pub struct PgStatement {
    inner: Statement,
    effect: Effect,
}

impl Deref for PgStatement {
    type Target = Statement;

    fn deref(&self) -> &Statement {
        &self.inner
    }
}

impl fmt::Debug for PgStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStatement")
            .field("params", &self.inner.params())
            .field("effect", &self.effect)
            .finish()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for super::PgStatement {}
    impl Sealed for tokio_postgres::Statement {}
}

/// What [`PgConn`]'s query methods accept: SQL text (`&str`, `String`), a
/// [`PgStatement`], or a driver [`Statement`] (whose text the wrapper
/// cannot see: it counts as changing anything).
pub trait Query: sealed::Sealed + Sync {
    /// What running it may do.
    #[doc(hidden)]
    fn effect(&self) -> Effect;
    /// What the driver runs.
    #[doc(hidden)]
    fn target(&self) -> Target<'_>;
}

/// What the driver runs for a [`Query`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// SQL text.
    Text(&'a str),
    /// A prepared statement.
    Prepared(&'a Statement),
}

impl Query for str {
    fn effect(&self) -> Effect {
        sql::effect(self)
    }
    fn target(&self) -> Target<'_> {
        Target::Text(self)
    }
}

impl Query for String {
    fn effect(&self) -> Effect {
        sql::effect(self)
    }
    fn target(&self) -> Target<'_> {
        Target::Text(self)
    }
}

impl Query for PgStatement {
    fn effect(&self) -> Effect {
        self.effect
    }
    fn target(&self) -> Target<'_> {
        Target::Prepared(&self.inner)
    }
}

impl Query for Statement {
    fn effect(&self) -> Effect {
        Effect::UNKNOWN
    }
    fn target(&self) -> Target<'_> {
        Target::Prepared(self)
    }
}

/// Run `$body` with `$s` bound to the query's text or statement.
macro_rules! with_target {
    ($query:expr, $s:ident => $body:expr) => {
        match $query.target() {
            Target::Text($s) => $body,
            Target::Prepared($s) => $body,
        }
    };
}

/// Parameters as the driver takes them.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgConn {
    pub(crate) fn new(
        client: Client,
        task: Task,
        facts: PgServerFacts,
        target: CancelTarget,
        how: &Open,
    ) -> Self {
        let token = client.cancel_token();
        let c = Conn {
            client,
            tracker: Tracker::default(),
            facts,
            task,
            token,
            target,
            cancel_timeout: how.cancel_timeout,
            command_timeout: how.command_timeout,
            deadline: None,
            statements: Mutex::new(HashMap::new()),
            last_done: Mutex::new(None),
            verdict: Arc::clone(&how.verdict),
            watch: how.watchdog.watch(),
        };
        PgConn { c }
    }

    /// [`Client::query`], tracked and bounded.
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// Dropping the future cancels the command on the server before the
    /// connection runs anything else.
    pub async fn query<Q: Query + ?Sized>(
        &self,
        query: &Q,
        params: Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        with_target!(query, s => self.run(query.effect(), self.c.client.query(s, params)).await)
    }

    /// [`Client::query_one`], tracked and bounded (see [`query`](Self::query)).
    ///
    /// # Errors
    /// The driver's error (also when not exactly one row came), or
    /// [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn query_one<Q: Query + ?Sized>(
        &self,
        query: &Q,
        params: Params<'_>,
    ) -> Result<Row, Error> {
        with_target!(query, s => self.run(query.effect(), self.c.client.query_one(s, params)).await)
    }

    /// [`Client::query_opt`], tracked and bounded (see [`query`](Self::query)).
    ///
    /// # Errors
    /// The driver's error (also when more than one row came), or
    /// [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn query_opt<Q: Query + ?Sized>(
        &self,
        query: &Q,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        with_target!(query, s => self.run(query.effect(), self.c.client.query_opt(s, params)).await)
    }

    /// [`Client::execute`], tracked and bounded (see [`query`](Self::query)).
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn execute<Q: Query + ?Sized>(
        &self,
        query: &Q,
        params: Params<'_>,
    ) -> Result<u64, Error> {
        with_target!(query, s => self.run(query.effect(), self.c.client.execute(s, params)).await)
    }

    /// [`Client::batch_execute`] (the simple query protocol, several
    /// statements allowed), tracked and bounded.
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.run(sql::effect(sql), self.c.client.batch_execute(sql))
            .await
    }

    /// [`Client::simple_query`], tracked and bounded.
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        self.run(sql::effect(sql), self.c.client.simple_query(sql))
            .await
    }

    /// [`Client::prepare`]: preparing runs nothing; what the statement's
    /// text may do is recorded for when it runs.
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn prepare(&self, sql: &str) -> Result<PgStatement, Error> {
        self.prepare_typed(sql, &[]).await
    }

    /// [`Client::prepare_typed`] (see [`prepare`](Self::prepare)).
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query).
    pub async fn prepare_typed(&self, sql: &str, types: &[Type]) -> Result<PgStatement, Error> {
        let inner = self
            .run(Effect::default(), self.c.client.prepare_typed(sql, types))
            .await?;
        Ok(PgStatement {
            inner,
            effect: sql::effect(sql),
        })
    }

    /// A statement prepared once on this connection and kept for later
    /// borrowers (at most [`STATEMENT_CACHE_SIZE`]). A reset that drops
    /// prepared statements (`DISCARD ALL`) empties the cache.
    ///
    /// # Errors
    /// The driver's error, or [`Error::Deadline`].
    ///
    /// # Cancel safety
    /// As [`query`](Self::query); nothing is cached then.
    pub async fn prepare_cached(&self, sql: &str) -> Result<PgStatement, Error> {
        if let Some(stmt) = self.c.statements.lock().get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.prepare(sql).await?;
        let mut cache = self.c.statements.lock();
        if cache.len() >= STATEMENT_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// How many statements [`prepare_cached`](Self::prepare_cached) holds.
    pub fn cached_statements(&self) -> usize {
        self.c.statements.lock().len()
    }

    /// The driver's client, for APIs this type does not wrap (`copy_in`,
    /// `query_raw`, ...). Counts as having changed anything: the connection
    /// gets the full reset on return, and commands run here are not bounded
    /// by the deadline.
    pub fn client(&self) -> &Client {
        self.c.tracker.raw();
        &self.c.client
    }

    /// A driver transaction ([`Client::transaction`]); like
    /// [`client`](Self::client), counts as having changed anything. For a
    /// transaction the wrapper tracks at no cost, run `BEGIN` / `COMMIT`
    /// through [`batch_execute`](Self::batch_execute) (that is what
    /// [`Transactional`](poolwarden::Transactional) does).
    ///
    /// # Errors
    /// The driver's error from `BEGIN`.
    ///
    /// # Cancel safety
    /// Dropping it leaves the transaction to the pool's reset.
    pub async fn transaction(&mut self) -> Result<tokio_postgres::Transaction<'_>, Error> {
        self.c.tracker.raw();
        Ok(self.c.client.transaction().await?)
    }

    /// Bound every later command on this connection by `deadline` (`None`:
    /// only by the manager's `command_timeout`). A command still running
    /// then fails with [`Error::Deadline`] and is cancelled on the server.
    /// The pool sets it at every hand-out to the checkout's deadline
    /// ([`Pool::get_until`](poolwarden::Pool::get_until); `None` for
    /// `get`) and clears it at return.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.c.deadline = deadline;
    }

    /// The deadline set by [`set_deadline`](Self::set_deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.c.deadline
    }

    /// What the server said when the connection opened.
    pub fn server_facts(&self) -> &PgServerFacts {
        &self.c.facts
    }

    /// Whether the connection is gone (the server closed it, or an I/O
    /// error ended its task). Costs no round trip: the connection task
    /// reads the socket all the time.
    pub fn is_closed(&self) -> bool {
        self.c.client.is_closed() || self.c.task.has_ended()
    }

    /// Whether a borrower may have left session state or a transaction
    /// behind since the last reset.
    pub fn is_dirty(&self) -> bool {
        let seen = self.c.tracker.seen();
        seen.session != sql::SessionEffect::None || seen.tx_open
    }

    /// A token to cancel this connection's running command from elsewhere.
    pub fn cancel_token(&self) -> CancelToken {
        self.c.token.clone()
    }

    pub(crate) fn seen(&self) -> Seen {
        self.c.tracker.seen()
    }

    /// The client, for the manager's own commands (not tracked).
    pub(crate) fn inner(&self) -> &Client {
        &self.c.client
    }

    /// The prepared statements are gone on the server (`DISCARD ALL`).
    pub(crate) fn forget_statements(&self) {
        self.c.statements.lock().clear();
        self.c.client.clear_type_cache();
    }

    /// If a command was interrupted, cancel it on the server (bounded, best
    /// effort); whether a cancel request was sent. Commands sent afterwards
    /// queue behind the interrupted one in any case.
    pub(crate) async fn cancel_interrupted(&self) -> bool {
        if self.c.tracker.take_interrupted() && !self.c.cancel_timeout.is_zero() {
            cancel::cancel(&self.c.token, &self.c.target, self.c.cancel_timeout).await;
            return true;
        }
        false
    }

    /// The earliest of the deadline and `now` + `command_timeout`.
    fn limit(&self, now: Instant) -> Option<Instant> {
        let timeout = self.c.command_timeout.map(|t| now + t);
        match (self.c.deadline, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn run<T>(
        &self,
        effect: Effect,
        command: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        if self.c.watch.is_cut() {
            return Err(Error::PoolClosed { sent: false });
        }
        if self.c.tracker.seen_interrupted() {
            self.cancel_interrupted().await;
        }
        self.warn_if_idle_in_transaction();
        let op = self.c.tracker.start(effect);
        let started = Instant::now();
        // NOTE: on the deadline or a cut, `op` is dropped unfinished: an
        // interrupted command, cancelled on the server before anything else
        // runs on the connection (or when it is dropped).
        let result = tokio::select! {
            biased;
            result = command => result,
            ended = self.c.watch.limit(self.limit(started)) => {
                return Err(match ended {
                    Ended::Deadline => {
                        // Slow statement or silent server? Asked off this path.
                        self.c.verdict.command_timed_out(&self.c.target);
                        Error::Deadline {
                            waited: started.elapsed(),
                        }
                    }
                    Ended::Cut => Error::PoolClosed { sent: true },
                });
            }
        };
        op.finish(result.is_ok());
        if self.c.facts.idle_in_transaction_session_timeout.is_some() {
            *self.c.last_done.lock() = Some(std::time::Instant::now());
        }
        Ok(result?)
    }

    /// A borrower idle inside a transaction for most of
    /// `idle_in_transaction_session_timeout` is about to lose the session.
    fn warn_if_idle_in_transaction(&self) {
        let Some(limit) = self.c.facts.idle_in_transaction_session_timeout else {
            return;
        };
        if !self.c.tracker.seen().tx_open {
            return;
        }
        let idle = self.c.last_done.lock().map(|t| t.elapsed());
        let warn_after = limit.mul_f64(IDLE_IN_TRANSACTION_WARN_FRACTION);
        if let Some(idle) = idle.filter(|idle| *idle >= warn_after) {
            tracing::warn!(
                ?idle,
                ?limit,
                "a borrower idled inside a transaction near the server's \
                 idle_in_transaction_session_timeout; the server closes the session at the limit"
            );
        }
    }
}

/// A connection dropped right after an interrupted command (the pool
/// discards a connection whose command hit its deadline): cancel the command
/// on the server in the background, bounded, so the server does not run it
/// to its end for nobody; while the server may be frozen, once it answers
/// again (`verdict.rs`).
impl Drop for PgConn {
    fn drop(&mut self) {
        if !self.c.tracker.take_interrupted() || self.c.cancel_timeout.is_zero() || self.is_closed()
        {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (token, target, timeout) = (
                self.c.token.clone(),
                self.c.target.clone(),
                self.c.cancel_timeout,
            );
            // Held back while the server may be frozen (`verdict.rs`).
            self.c.verdict.cancel_soon(move || {
                drop(rt.spawn(async move { cancel::cancel(&token, &target, timeout).await }));
            });
        }
    }
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.is_closed())
            .field("seen", &self.c.tracker.seen())
            .field("facts", &self.c.facts)
            .field("deadline", &self.c.deadline)
            .finish_non_exhaustive()
    }
}
