//! [`MySqlConn`]: the connection the pool hands out. It wraps a
//! [`mysql_async::Conn`] and watches the SQL that goes through it, so that a
//! borrower who changed no session state costs no reset (F13).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::consts::StatusFlags;
use mysql_async::prelude::{AsQuery, FromRow, Queryable, StatementLike};
use mysql_async::{
    BinaryProtocol, Conn, Connection, Params, QueryResult, ResultSetStream, Statement, TextProtocol,
};
use poolwarden::ConnectionFacts;
use tokio::time::Instant;

use crate::deadline::{self, Deadlines, Expiry, WithTimeout};
use crate::kill::Killer;
use crate::probe::Session;
use crate::sql::may_change_session;
use crate::stream::BoundedStream;

/// mysql_async's (private) future type, spelled out.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = mysql_async::Result<T>> + Send + 'a>>;

/// A pooled MySQL/MariaDB connection: a [`mysql_async::Conn`] plus what the
/// manager knows about it.
///
/// The pool's guard dereferences to this type. It offers the driver's query
/// API ([`Queryable`]: `query*`, `exec*`, `prep`, `close`, `ping`) and looks
/// at the SQL text of every statement it runs, with
/// [`may_change_session`](crate::may_change_session). When a statement may
/// have changed session state (`SET @x`, `INSERT`, `GET_LOCK`, ...) the
/// connection is marked *dirty*, and under the default
/// [`ResetPolicy::Auto`](crate::ResetPolicy::Auto) it is reset before the
/// next borrower gets it. A borrower who ran only harmless statements
/// (`SELECT`, `UPDATE`, `DELETE`, `BEGIN`/`COMMIT`, ...) costs nothing: the
/// connection goes straight back to the pool.
///
/// ```no_run
/// # async fn demo(pool: poolwarden::Pool<poolwarden_mysql::MySqlManager>) -> Result<(), Box<dyn std::error::Error>> {
/// use mysql_async::prelude::*;
///
/// let mut conn = pool.get().await?;
/// // Tracked: harmless, no reset when `conn` is dropped.
/// let n: Option<i64> = conn.exec_first("SELECT COUNT(*) FROM t WHERE a = ?", (1,)).await?;
/// // Tracked: a user variable, so the connection is reset on return.
/// conn.query_drop("SET @seen = 1").await?;
/// // Read-only `Conn` methods need no tracking.
/// let id = conn.id();
/// // `&mut Conn` is raw use: counted as "may have changed anything".
/// let raw: &mut mysql_async::Conn = conn.raw_mut();
/// # let _ = (n, id, raw); Ok(()) }
/// ```
///
/// # What counts as raw use
///
/// Anything that needs `&mut mysql_async::Conn` marks the connection dirty,
/// because the wrapper cannot see what happens there: [`DerefMut`] (so also
/// any `&mut self` method of `Conn` called through the guard, such as
/// `start_transaction`, `reset` or `change_user`), [`raw_mut`](Self::raw_mut),
/// passing `&mut *guard` or `&mut **guard` where mysql_async wants a
/// connection (`"...".run(&mut *guard)`, `.ignore(...)`, `.first(...)`), and
/// the `exec*` methods of the [`Queryable`] trait when called through the
/// trait itself (generic code over `impl Queryable`): mysql_async's
/// `StatementLike` does not let the wrapper read the statement's text there.
/// Calling `conn.exec_drop(...)` and friends directly on the guard uses this
/// type's own `exec*` methods, which do see the text.
///
/// # Command deadlines
///
/// Every command run through this type (the [`Queryable`] methods and the
/// tracked `exec*` methods, streams to their last row) ends by a deadline:
/// the earliest of now + the command timeout
/// ([`MySqlManager::command_timeout`](crate::MySqlManager::command_timeout),
/// or [`set_command_timeout`](Self::set_command_timeout) for this checkout,
/// or [`with_timeout`](Self::with_timeout) for some calls) and the
/// checkout's deadline (`Pool::get_until`, or
/// [`set_deadline`](Self::set_deadline)). Past it the command fails with a
/// [`CommandTimeout`], the connection is discarded when it goes back to the
/// pool, and the server is told to stop the work. Not covered: rows read
/// through the [`QueryResult`] that `query_iter`/`exec_iter` return (the
/// bound covers the command up to its first result set; use
/// `query_stream`/`exec_stream` or the collecting methods), and commands
/// run on the raw `Conn` ([`raw_mut`](Self::raw_mut), `DerefMut`).
///
/// ```no_run
/// # async fn demo(pool: poolwarden::Pool<poolwarden_mysql::MySqlManager>) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mysql_async::prelude::*;
///
/// let mut conn = pool.get().await?;
/// // This checkout runs a long report: 5 minutes per command.
/// conn.set_command_timeout(Some(Duration::from_secs(300)));
/// // One call with its own bound.
/// let n: Option<i64> = conn
///     .with_timeout(Duration::from_millis(200))
///     .query_first("SELECT COUNT(*) FROM t")
///     .await?;
/// # let _ = n; Ok(()) }
/// ```
pub struct MySqlConn {
    /// The driver's connection. Used directly (not through `DerefMut`) by
    /// the manager, so its own commands do not count as the borrower's.
    pub(crate) inner: Conn,
    pub(crate) tracker: Tracker,
    /// What the server said at connect.
    pub(crate) facts: ConnectionFacts,
    /// `SERVER_STATUS_AUTOCOMMIT` after connect and init SQL.
    pub(crate) autocommit: bool,
    /// The deadline settings of the current checkout.
    pub(crate) deadlines: Deadlines,
    /// Where a timed-out command's kill goes (`None`: not from a manager).
    killer: Option<Arc<Killer>>,
    /// A command passed its deadline: the protocol state is unknown, the
    /// connection must never be reused.
    pub(crate) timed_out: bool,
}

impl MySqlConn {
    pub(crate) fn new(inner: Conn, facts: ConnectionFacts, autocommit: bool) -> Self {
        MySqlConn {
            inner,
            tracker: Tracker::default(),
            facts,
            autocommit,
            deadlines: Deadlines::default(),
            killer: None,
            timed_out: false,
        }
    }

    /// Bound this connection's commands by `command_timeout`; timed-out
    /// commands are reported to `killer`.
    pub(crate) fn with_deadlines(
        mut self,
        command_timeout: Option<Duration>,
        killer: Arc<Killer>,
    ) -> Self {
        self.deadlines = Deadlines::new(command_timeout);
        self.killer = Some(killer);
        self
    }

    /// The per-command timeout for the rest of this checkout, replacing the
    /// manager's [`command_timeout`](crate::MySqlManager::command_timeout)
    /// (longer or shorter); `None` turns it off (the checkout's deadline, if
    /// any, still applies). Forgotten when the connection goes back to the
    /// pool.
    pub fn set_command_timeout(&mut self, timeout: Option<Duration>) {
        self.deadlines.set_checkout_timeout(timeout);
    }

    /// A deadline for every command of the rest of this checkout, replacing
    /// the one the checkout carried (`Pool::get_until`); `None` removes it
    /// (the command timeout still applies). Forgotten when the connection
    /// goes back to the pool.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadlines.set_deadline(deadline);
    }

    /// The calls made through the returned handle use `timeout` as their
    /// command timeout (instead of the checkout's or the manager's); the
    /// checkout's deadline still applies. The previous setting comes back
    /// when the handle is dropped:
    /// `conn.with_timeout(d).query_drop("...").await`.
    pub fn with_timeout(&mut self, timeout: Duration) -> WithTimeout<'_> {
        let previous = self.deadlines.swap_call_timeout(Some(timeout));
        WithTimeout {
            conn: self,
            previous,
        }
    }

    /// Whether a command on this connection passed its deadline (the
    /// connection will be discarded, never reused).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Run the driver's `command` under this checkout's deadline.
    fn bounded<'c: 'f, 'f, T: 'f>(
        &'c mut self,
        command: &'static str,
        run: impl FnOnce(&'c mut Conn) -> BoxFuture<'f, T>,
    ) -> BoxFuture<'f, T> {
        let Some(bound) = self.deadlines.bound(Instant::now()) else {
            return run(&mut self.inner);
        };
        let (fut, expiry) = self.start(command, run);
        Box::pin(deadline::run(fut, bound, expiry))
    }

    /// Run the driver's `command`, a stream of the first result set,
    /// bounded to its last row.
    fn bounded_stream<'c: 's, 's, T, P>(
        &'c mut self,
        command: &'static str,
        run: impl FnOnce(&'c mut Conn) -> BoxFuture<'s, ResultSetStream<'c, 'c, 'static, T, P>>,
    ) -> BoxFuture<'s, BoundedStream<'c, T, P>>
    where
        T: Send + 'static,
        P: Send + 'static,
    {
        let bound = self.deadlines.bound(Instant::now());
        let (fut, expiry) = self.start(command, run);
        Box::pin(async move {
            let Some(bound) = bound else {
                return Ok(BoundedStream::new(fut.await?, None, expiry));
            };
            match tokio::time::timeout_at(bound.at, fut).await {
                Ok(stream) => Ok(BoundedStream::new(stream?, Some(bound), expiry)),
                Err(_elapsed) => Err(expiry.expire(bound).into()),
            }
        })
    }

    /// Start the driver's `command`; the [`Expiry`] marks this connection
    /// if it passes its deadline.
    fn start<'c: 'f, 'f, T>(
        &'c mut self,
        command: &'static str,
        run: impl FnOnce(&'c mut Conn) -> BoxFuture<'f, T>,
    ) -> (BoxFuture<'f, T>, Expiry<'c>) {
        let expiry = Expiry {
            command,
            connection_id: self.inner.id(),
            timed_out: &mut self.timed_out,
            killer: self.killer.as_ref(),
        };
        (run(&mut self.inner), expiry)
    }

    /// Whether the connection may carry session state the borrowers left
    /// behind since it was opened or last fully reset: some statement was
    /// not known to be harmless, or the connection was used raw.
    ///
    /// An open transaction is not part of this: the server's status flags
    /// show it.
    pub fn is_dirty(&self) -> bool {
        self.tracker.dirty
    }

    /// The driver's connection, for APIs this type does not wrap. Marks the
    /// connection dirty: it is reset before the next borrower gets it.
    pub fn raw_mut(&mut self) -> &mut Conn {
        self.tracker.raw();
        &mut self.inner
    }

    /// The driver's connection, taken out of the wrapper.
    pub fn into_inner(self) -> Conn {
        self.inner
    }

    /// What the server's last status says about the session, as far as it
    /// can be trusted (see [`StatusSource`]).
    pub(crate) fn session(&self) -> Session {
        match self.tracker.status {
            StatusSource::Live => Session::of(&self.inner),
            StatusSource::Saved(status) => Session { status },
            StatusSource::Unknown => Session { status: None },
        }
    }

    /// `stmt` is about to be executed: mark the connection dirty if it may
    /// change session state.
    fn note<S: TrackedStatement>(&mut self, stmt: &S) {
        match stmt.seen() {
            sealed::Seen::Text(sql) => self.tracker.sql(&sql),
            sealed::Seen::Prepared(stmt) => {
                if stmt.connection_id() == self.inner.id() && self.tracker.is_harmless(stmt.id()) {
                    self.tracker.live();
                } else {
                    self.tracker.unknown_statement();
                }
            }
        }
    }

    /// [`Queryable::exec_iter`], with the statement's text tracked.
    pub fn exec_iter<'a: 's, 's, Q, P>(
        &'a mut self,
        stmt: Q,
        params: P,
    ) -> BoxFuture<'s, QueryResult<'a, 'static, BinaryProtocol>>
    where
        Q: TrackedStatement + 's,
        P: Into<Params>,
    {
        self.note(&stmt);
        self.bounded("exec_iter", move |c| c.exec_iter(stmt, params))
    }

    /// [`Queryable::exec`], with the statement's text tracked.
    pub fn exec<'a: 'b, 'b, T, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, Vec<T>>
    where
        S: TrackedStatement + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        self.note(&stmt);
        self.bounded("exec", move |c| c.exec(stmt, params))
    }

    /// [`Queryable::exec_first`], with the statement's text tracked.
    pub fn exec_first<'a: 'b, 'b, T, S, P>(
        &'a mut self,
        stmt: S,
        params: P,
    ) -> BoxFuture<'b, Option<T>>
    where
        S: TrackedStatement + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        self.note(&stmt);
        self.bounded("exec_first", move |c| c.exec_first(stmt, params))
    }

    /// [`Queryable::exec_map`], with the statement's text tracked.
    pub fn exec_map<'a: 'b, 'b, T, S, P, U, F>(
        &'a mut self,
        stmt: S,
        params: P,
        f: F,
    ) -> BoxFuture<'b, Vec<U>>
    where
        S: TrackedStatement + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
        F: FnMut(T) -> U + Send + 'a,
        U: Send + 'a,
    {
        self.note(&stmt);
        self.bounded("exec_map", move |c| c.exec_map(stmt, params, f))
    }

    /// [`Queryable::exec_fold`], with the statement's text tracked.
    pub fn exec_fold<'a: 'b, 'b, T, S, P, U, F>(
        &'a mut self,
        stmt: S,
        params: P,
        init: U,
        f: F,
    ) -> BoxFuture<'b, U>
    where
        S: TrackedStatement + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
        F: FnMut(U, T) -> U + Send + 'a,
        U: Send + 'a,
    {
        self.note(&stmt);
        self.bounded("exec_fold", move |c| c.exec_fold(stmt, params, init, f))
    }

    /// [`Queryable::exec_drop`], with the statement's text tracked.
    pub fn exec_drop<'a: 'b, 'b, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, ()>
    where
        S: TrackedStatement + 'b,
        P: Into<Params> + Send + 'b,
    {
        self.note(&stmt);
        self.bounded("exec_drop", move |c| c.exec_drop(stmt, params))
    }

    /// [`Queryable::exec_batch`], with the statement's text tracked.
    pub fn exec_batch<'a: 'b, 'b, S, P, I>(
        &'a mut self,
        stmt: S,
        params_iter: I,
    ) -> BoxFuture<'b, ()>
    where
        S: TrackedStatement + 'b,
        I: IntoIterator<Item = P> + Send + 'b,
        I::IntoIter: Send,
        P: Into<Params> + Send,
    {
        self.note(&stmt);
        self.tracker.batch();
        self.bounded("exec_batch", move |c| c.exec_batch(stmt, params_iter))
    }

    /// [`Queryable::exec_stream`], with the statement's text tracked and
    /// the deadline bounding the stream to its last row.
    pub fn exec_stream<'a: 's, 's, T, Q, P>(
        &'a mut self,
        stmt: Q,
        params: P,
    ) -> BoxFuture<'s, BoundedStream<'a, T, BinaryProtocol>>
    where
        T: Unpin + FromRow + Send + 'static,
        Q: TrackedStatement + 's,
        P: Into<Params> + Send + 's,
    {
        self.note(&stmt);
        self.bounded_stream("exec_stream", move |c| c.exec_stream(stmt, params))
    }

    /// [`Queryable::query_stream`], with the deadline bounding the stream
    /// to its last row.
    pub fn query_stream<'a, T, Q>(
        &'a mut self,
        query: Q,
    ) -> BoxFuture<'a, BoundedStream<'a, T, TextProtocol>>
    where
        T: Unpin + FromRow + Send + 'static,
        Q: AsQuery + 'a,
    {
        self.tracker.sql(&query.as_query());
        self.bounded_stream("query_stream", move |c| c.query_stream(query))
    }
}

/// The driver's query API, every command bounded by the deadline. `query*`
/// and `prep` see the SQL text; the
/// `exec*` methods reached **through this trait** cannot (mysql_async's
/// `StatementLike` hides it) and mark the connection dirty. Method calls on
/// the guard (`conn.exec_drop(...)`) resolve to [`MySqlConn`]'s own `exec*`
/// methods, which are tracked.
impl Queryable for MySqlConn {
    fn ping(&mut self) -> BoxFuture<'_, ()> {
        self.tracker.live();
        self.bounded("ping", |c| c.ping())
    }

    fn query_iter<'a, Q>(
        &'a mut self,
        query: Q,
    ) -> BoxFuture<'a, QueryResult<'a, 'static, TextProtocol>>
    where
        Q: AsQuery + 'a,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query_iter", move |c| c.query_iter(query))
    }

    fn prep<'a, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Statement>
    where
        Q: AsQuery + 'a,
    {
        // Preparing runs nothing; what the statement would do is recorded
        // for when it is executed.
        let harmless = !may_change_session(query.as_query());
        let before = self.session().status;
        self.tracker.preparing(before);
        Box::pin(async move {
            let stmt = self.bounded("prep", move |c| c.prep(query)).await?;
            self.tracker.prepared(stmt.id(), harmless);
            Ok(stmt)
        })
    }

    fn close(&mut self, stmt: Statement) -> BoxFuture<'_, ()> {
        self.tracker.closed(stmt.id());
        self.bounded("close", move |c| c.close(stmt))
    }

    fn exec_iter<'a: 's, 's, Q, P>(
        &'a mut self,
        stmt: Q,
        params: P,
    ) -> BoxFuture<'s, QueryResult<'a, 'static, BinaryProtocol>>
    where
        Q: StatementLike + 's,
        P: Into<Params>,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_iter", move |c| c.exec_iter(stmt, params))
    }

    fn exec_batch<'a: 'b, 'b, S, P, I>(&'a mut self, stmt: S, params_iter: I) -> BoxFuture<'b, ()>
    where
        S: StatementLike + 'b,
        I: IntoIterator<Item = P> + Send + 'b,
        I::IntoIter: Send,
        P: Into<Params> + Send,
    {
        self.tracker.unknown_statement();
        self.tracker.batch();
        self.bounded("exec_batch", move |c| c.exec_batch(stmt, params_iter))
    }

    // The provided methods, overridden so that the deadline covers the
    // whole command (reading its rows included), not only `query_iter`.

    fn query<'a, T, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Vec<T>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query", move |c| c.query(query))
    }

    fn query_first<'a, T, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Option<T>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query_first", move |c| c.query_first(query))
    }

    fn query_map<'a, T, F, Q, U>(&'a mut self, query: Q, f: F) -> BoxFuture<'a, Vec<U>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
        F: FnMut(T) -> U + Send + 'a,
        U: Send,
    {
        self.tracker.sql(&query.as_query());
        // NOTE: inside an async block, so that `Vec<U>` need only outlive
        // the block's own borrow of `self` (the trait does not require
        // `U: 'a`, and `bounded` needs its output to outlive its borrow).
        Box::pin(async move {
            self.bounded("query_map", move |c| c.query_map(query, f))
                .await
        })
    }

    fn query_fold<'a, T, F, Q, U>(&'a mut self, query: Q, init: U, f: F) -> BoxFuture<'a, U>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
        F: FnMut(U, T) -> U + Send + 'a,
        U: Send + 'a,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query_fold", move |c| c.query_fold(query, init, f))
    }

    fn query_drop<'a, Q>(&'a mut self, query: Q) -> BoxFuture<'a, ()>
    where
        Q: AsQuery + 'a,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query_drop", move |c| c.query_drop(query))
    }

    fn exec<'a: 'b, 'b, T, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, Vec<T>>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        self.tracker.unknown_statement();
        self.bounded("exec", move |c| c.exec(stmt, params))
    }

    fn exec_first<'a: 'b, 'b, T, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, Option<T>>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_first", move |c| c.exec_first(stmt, params))
    }

    fn exec_map<'a: 'b, 'b, T, S, P, U, F>(
        &'a mut self,
        stmt: S,
        params: P,
        f: F,
    ) -> BoxFuture<'b, Vec<U>>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
        F: FnMut(T) -> U + Send + 'a,
        U: Send + 'a,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_map", move |c| c.exec_map(stmt, params, f))
    }

    fn exec_fold<'a: 'b, 'b, T, S, P, U, F>(
        &'a mut self,
        stmt: S,
        params: P,
        init: U,
        f: F,
    ) -> BoxFuture<'b, U>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
        F: FnMut(U, T) -> U + Send + 'a,
        U: Send + 'a,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_fold", move |c| c.exec_fold(stmt, params, init, f))
    }

    fn exec_drop<'a: 'b, 'b, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, ()>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_drop", move |c| c.exec_drop(stmt, params))
    }

    /// Bounded until the stream is returned; its rows are not (the trait
    /// fixes the stream's type). Called on the connection or the guard,
    /// [`MySqlConn::query_stream`] bounds every row.
    fn query_stream<'a, T, Q>(
        &'a mut self,
        query: Q,
    ) -> BoxFuture<'a, ResultSetStream<'a, 'a, 'static, T, TextProtocol>>
    where
        T: Unpin + FromRow + Send + 'static,
        Q: AsQuery + 'a,
    {
        self.tracker.sql(&query.as_query());
        self.bounded("query_stream", move |c| c.query_stream(query))
    }

    /// Bounded until the stream is returned; its rows are not (the trait
    /// fixes the stream's type). Called on the connection or the guard,
    /// [`MySqlConn::exec_stream`] bounds every row.
    fn exec_stream<'a: 's, 's, T, Q, P>(
        &'a mut self,
        stmt: Q,
        params: P,
    ) -> BoxFuture<'s, ResultSetStream<'a, 'a, 'static, T, BinaryProtocol>>
    where
        T: Unpin + FromRow + Send + 'static,
        Q: StatementLike + 's,
        P: Into<Params> + Send + 's,
    {
        self.tracker.unknown_statement();
        self.bounded("exec_stream", move |c| c.exec_stream(stmt, params))
    }
}

/// Read-only access to the driver's connection (`id()`, `last_insert_id()`,
/// `affected_rows()`, `server_version()`, ...): no tracking needed.
impl Deref for MySqlConn {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.inner
    }
}

/// Mutable access to the driver's connection: marks the connection dirty
/// (see [`raw_mut`](MySqlConn::raw_mut)).
impl DerefMut for MySqlConn {
    fn deref_mut(&mut self) -> &mut Conn {
        self.raw_mut()
    }
}

/// Lets `&mut *guard` stand where mysql_async wants a connection
/// (`"SELECT 1".ignore(&mut *guard)`, `.run(...)`, `.first(...)`): raw use,
/// the connection is marked dirty.
impl<'a> From<&'a mut MySqlConn> for Connection<'a, 'static> {
    fn from(conn: &'a mut MySqlConn) -> Self {
        conn.raw_mut().into()
    }
}

impl fmt::Debug for MySqlConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `Conn`'s Debug: it prints the connection options, password
        // included.
        f.debug_struct("MySqlConn")
            .field("id", &self.inner.id())
            .field("dirty", &self.tracker.dirty)
            .field("timed_out", &self.timed_out)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// What [`MySqlConn`] saw the borrowers do since it was last made clean.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Something ran that may have changed session state.
    dirty: bool,
    /// Ids of statements prepared through [`Queryable::prep`] whose text is
    /// harmless. Bounded: when full it starts over, and the forgotten
    /// statements simply count as changing when executed.
    harmless: HashSet<u32>,
    /// Whether `Conn::last_ok_packet()` can be believed.
    status: StatusSource,
}

/// Where the probe reads the server's last status (open transaction,
/// `autocommit`) from.
///
/// mysql_async parses **every** packet it reads as an OK packet if it can,
/// including the `COM_STMT_PREPARE` response, whose bytes then pass for
/// status flags: after a prepare, `last_ok_packet()` shows garbage (usually
/// "no autocommit", but for some statement ids and column counts exactly
/// "autocommit, no transaction", which could hide an open transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StatusSource {
    /// The last command ended with a real OK/EOF packet (or an error):
    /// `last_ok_packet()` holds.
    #[default]
    Live,
    /// The last command was a prepare; the status before it still holds (a
    /// prepare changes no transaction state).
    Saved(Option<StatusFlags>),
    /// Unknown: raw use of the `Conn`, or a batch that may have run no
    /// statement after its prepare. Counts as "a transaction may be open".
    Unknown,
}

/// How many harmless prepared statements are remembered.
const MAX_HARMLESS_STATEMENTS: usize = 1024;

impl Tracker {
    /// A statement's text is about to run (and its result to be read).
    pub(crate) fn sql(&mut self, sql: &[u8]) {
        if may_change_session(sql) {
            self.dirty = true;
        }
        self.status = StatusSource::Live;
    }

    /// A statement whose text is unknown is about to run.
    pub(crate) fn unknown_statement(&mut self) {
        self.dirty = true;
        self.status = StatusSource::Live;
    }

    /// A command that ends with a real status and changes nothing (a ping,
    /// a harmless prepared statement, the manager's own commands) is about
    /// to run.
    pub(crate) fn live(&mut self) {
        self.status = StatusSource::Live;
    }

    /// A batch is about to run: with no parameter sets it executes nothing
    /// after its prepare, and the iterator cannot be looked at here.
    pub(crate) fn batch(&mut self) {
        self.status = StatusSource::Unknown;
    }

    /// Something the tracker cannot see is about to happen.
    pub(crate) fn raw(&mut self) {
        self.dirty = true;
        self.status = StatusSource::Unknown;
    }

    /// A statement is about to be prepared; `before` is the status until
    /// now.
    pub(crate) fn preparing(&mut self, before: Option<StatusFlags>) {
        if self.status == StatusSource::Live {
            self.status = StatusSource::Saved(before);
        }
    }

    /// A statement was prepared (executing it comes later).
    pub(crate) fn prepared(&mut self, id: u32, harmless: bool) {
        if harmless {
            if self.harmless.len() >= MAX_HARMLESS_STATEMENTS && !self.harmless.contains(&id) {
                self.harmless.clear();
            }
            self.harmless.insert(id);
        } else {
            self.harmless.remove(&id);
        }
    }

    /// A prepared statement was closed.
    pub(crate) fn closed(&mut self, id: u32) {
        self.harmless.remove(&id);
    }

    /// Whether executing prepared statement `id` is known to be harmless.
    pub(crate) fn is_harmless(&self, id: u32) -> bool {
        self.harmless.contains(&id)
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The session was fully reset: nothing left behind, and every prepared
    /// statement is gone on the server.
    pub(crate) fn reset(&mut self) {
        self.dirty = false;
        self.harmless.clear();
        self.status = StatusSource::Live;
    }

    /// Where the last status can be read from.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusSource {
        self.status
    }
}

/// A statement whose text [`MySqlConn`]'s `exec*` methods can see: every
/// kind of statement mysql_async accepts (`&str`, `String`, `Cow<str>`,
/// `Box<str>`, `Arc<str>`, their byte-slice counterparts, a prepared
/// [`Statement`], and a reference to any of these). Sealed.
///
/// Generic code over mysql_async's `StatementLike` can call the trait
/// method instead (`Queryable::exec_drop(&mut *conn, stmt, params)`), which
/// counts as raw use.
pub trait TrackedStatement: StatementLike + sealed::Sealed {}

#[allow(unreachable_pub)] // the sealed-trait pattern: public, unnameable
mod sealed {
    use std::borrow::Cow;

    use mysql_async::Statement;

    /// What the statement shows the tracker.
    pub enum Seen<'a> {
        /// SQL text.
        Text(Cow<'a, [u8]>),
        /// A statement prepared earlier.
        Prepared(&'a Statement),
    }

    /// Implemented by the statement types the tracker understands.
    pub trait Sealed {
        /// The text or the prepared statement.
        fn seen(&self) -> Seen<'_>;
    }
}

macro_rules! tracked_text {
    ($($ty:ty),* $(,)?) => {$(
        impl sealed::Sealed for $ty {
            fn seen(&self) -> sealed::Seen<'_> {
                sealed::Seen::Text(AsQuery::as_query(self))
            }
        }
        impl TrackedStatement for $ty {}
    )*};
}

tracked_text!(
    &str,
    String,
    std::borrow::Cow<'_, str>,
    Box<str>,
    std::sync::Arc<str>,
    &[u8],
    Vec<u8>,
    std::borrow::Cow<'_, [u8]>,
    Box<[u8]>,
    std::sync::Arc<[u8]>,
);

impl sealed::Sealed for Statement {
    fn seen(&self) -> sealed::Seen<'_> {
        sealed::Seen::Prepared(self)
    }
}
impl TrackedStatement for Statement {}

impl<T: TrackedStatement + Clone> sealed::Sealed for &T {
    fn seen(&self) -> sealed::Seen<'_> {
        (**self).seen()
    }
}
impl<T: TrackedStatement + Clone> TrackedStatement for &T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_marks_what_may_change() {
        let mut t = Tracker::default();
        t.sql(b"SELECT 1");
        t.sql(b"UPDATE t SET a = 1");
        assert!(!t.is_dirty());
        t.sql(b"SET @x = 1");
        assert!(t.is_dirty());
        t.reset();
        assert!(!t.is_dirty());
        t.raw();
        assert!(t.is_dirty());
    }

    #[test]
    fn tracker_remembers_harmless_prepared_statements() {
        let mut t = Tracker::default();
        t.prepared(1, true);
        t.prepared(2, false);
        assert!(t.is_harmless(1));
        assert!(!t.is_harmless(2));
        assert!(!t.is_harmless(3), "unknown statements are not harmless");
        t.closed(1);
        assert!(!t.is_harmless(1));
        t.prepared(4, true);
        t.reset();
        assert!(!t.is_harmless(4), "a reset drops every prepared statement");
        // Bounded.
        for id in 0..(MAX_HARMLESS_STATEMENTS as u32 + 10) {
            t.prepared(id, true);
        }
        assert!(t.harmless.len() <= MAX_HARMLESS_STATEMENTS);
        assert!(t.is_harmless(MAX_HARMLESS_STATEMENTS as u32 + 9));
    }

    #[test]
    fn status_source_follows_the_commands() {
        let mut t = Tracker::default();
        assert_eq!(t.status(), StatusSource::Live);
        let in_trans = Some(StatusFlags::SERVER_STATUS_IN_TRANS);
        t.preparing(in_trans);
        assert_eq!(t.status(), StatusSource::Saved(in_trans));
        t.preparing(None);
        assert_eq!(
            t.status(),
            StatusSource::Saved(in_trans),
            "a second prepare keeps the status from before the first"
        );
        t.sql(b"SELECT 1");
        assert_eq!(t.status(), StatusSource::Live);
        t.raw();
        assert_eq!(t.status(), StatusSource::Unknown);
        t.preparing(None);
        assert_eq!(t.status(), StatusSource::Unknown, "still unknown");
        t.live();
        assert_eq!(t.status(), StatusSource::Live);
        t.batch();
        assert_eq!(t.status(), StatusSource::Unknown);
        t.reset();
        assert_eq!(t.status(), StatusSource::Live);
    }

    #[test]
    fn every_statement_like_type_is_tracked() {
        fn seen_text<S: TrackedStatement>(s: &S) -> Vec<u8> {
            match s.seen() {
                sealed::Seen::Text(t) => t.to_vec(),
                sealed::Seen::Prepared(_) => panic!("not text"),
            }
        }
        let s = String::from("SELECT 1");
        assert_eq!(seen_text(&"SELECT 1"), b"SELECT 1");
        assert_eq!(seen_text(&s), b"SELECT 1");
        assert_eq!(seen_text(&&s), b"SELECT 1");
        assert_eq!(
            seen_text(&std::borrow::Cow::Borrowed("SELECT 1")),
            b"SELECT 1"
        );
        assert_eq!(seen_text(&Box::<str>::from("SELECT 1")), b"SELECT 1");
        assert_eq!(
            seen_text(&std::sync::Arc::<str>::from("SELECT 1")),
            b"SELECT 1"
        );
        assert_eq!(seen_text(&b"SELECT 1".as_slice()), b"SELECT 1");
        assert_eq!(seen_text(&b"SELECT 1".to_vec()), b"SELECT 1");
        assert_eq!(
            seen_text(&std::sync::Arc::<[u8]>::from(b"SELECT 1".as_slice())),
            b"SELECT 1"
        );
    }
}
