//! [`MySqlConn`]: the connection the pool hands out. It wraps a
//! [`mysql_async::Conn`] and watches the SQL that goes through it, so that a
//! borrower who changed no session state costs no reset (F13).

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::{AsQuery, FromRow, Queryable};
use mysql_async::{
    BinaryProtocol, Conn, Connection, Params, QueryResult, ResultSetStream, TextProtocol,
};
use poolwarden::ConnectionFacts;
use tokio::time::Instant;

use crate::abort::{CommandCut, Switch};
use crate::ambiguous;
use crate::deadline::{self, Bound, Deadlines, Expiry, WithTimeout};
use crate::kill::Killer;
use crate::probe::Session;
use crate::stream::BoundedStream;
use crate::track::{sealed, StatusSource, TrackedStatement, Tracker};

/// mysql_async's (private) future type, spelled out.
pub(crate) type BoxFuture<'a, T> =
    Pin<Box<dyn Future<Output = mysql_async::Result<T>> + Send + 'a>>;

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
/// # Errors and cancel safety
///
/// Every command returns the driver's error, or a [`CommandTimeout`]
/// inside [`mysql_async::Error::Other`] past its deadline
/// ([`CommandTimeout::find`]); a command called when its deadline has
/// already passed is not sent. Dropping a command's future mid-flight is
/// allowed: the connection is then mid-protocol, and the pool closes it at
/// return instead of reusing it (F5).
///
/// [`CommandTimeout`]: crate::CommandTimeout
/// [`CommandTimeout::find`]: crate::CommandTimeout::find
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
    /// What bounds its commands in time: registered with the manager's
    /// watchdog (`watchdog.rs`).
    watch: Option<Arc<crate::watchdog::Watch>>,
    /// A command passed its deadline: the protocol state is unknown, the
    /// connection must never be reused.
    pub(crate) timed_out: bool,
    /// This connection's switch (`abort.rs`): flipped, its commands are cut.
    pub(crate) abort: Option<Switch>,
    /// A command was cut by the switch: as `timed_out`.
    pub(crate) cut: bool,
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
            watch: None,
            timed_out: false,
            abort: None,
            cut: false,
        }
    }

    /// Bound this connection's commands by `command_timeout`; timed-out
    /// and cut commands are reported to `killer`; flipping `abort` (or a
    /// switch above it) cuts the commands in flight.
    pub(crate) fn with_deadlines(
        mut self,
        command_timeout: Option<Duration>,
        killer: Arc<Killer>,
        abort: Switch,
    ) -> Self {
        self.deadlines = Deadlines::new(command_timeout);
        self.watch = Some(killer.watchdog().watch());
        self.killer = Some(killer);
        self.abort = Some(abort);
        self
    }

    /// Whether a command on this connection passed its deadline or was cut:
    /// its protocol state is unknown, it is never reused.
    pub(crate) fn is_cut_off(&self) -> bool {
        self.timed_out || self.cut
    }

    /// Whether the command about to be sent commits (`ambiguous.rs`), from
    /// what the tracker saw of its text and the server's last status.
    fn commits(&self) -> bool {
        ambiguous::commits(self.tracker.commit(), self.session().status)
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
    pub(crate) fn bounded<'c: 'f, 'f, T: 'f>(
        &'c mut self,
        command: &'static str,
        run: impl FnOnce(&'c mut Conn) -> BoxFuture<'f, T>,
    ) -> BoxFuture<'f, T> {
        let bound = self.deadlines.bound(Instant::now());
        if let Some(bound) = bound.filter(Bound::already_passed) {
            let error = self.expiry(command).too_late(bound);
            return Box::pin(async move { Err(error.into()) });
        }
        if let Some(error) = self.not_sent(command) {
            return Box::pin(async move { Err(error.into()) });
        }
        let commits = self.commits();
        if bound.is_none() && self.abort.is_none() && !commits {
            return run(&mut self.inner);
        }
        let (fut, mut expiry) = self.start(command, run);
        expiry.commits = commits;
        Box::pin(deadline::run(fut, bound, expiry))
    }

    /// The error for a command called after the connection's switch
    /// flipped: it is not sent.
    fn not_sent(&self, command: &'static str) -> Option<CommandCut> {
        let switch = self.abort.as_ref().filter(|s| s.is_flipped())?;
        Some(CommandCut {
            command,
            connection_id: self.inner.id(),
            reason: switch.reason(),
            sent: false,
        })
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
        if let Some(bound) = bound.filter(Bound::already_passed) {
            let error = self.expiry(command).too_late(bound);
            return Box::pin(async move { Err(error.into()) });
        }
        if let Some(error) = self.not_sent(command) {
            return Box::pin(async move { Err(error.into()) });
        }
        let flipped = self.abort.as_ref().map(Switch::flipped_owned);
        let (fut, expiry) = self.start(command, run);
        Box::pin(async move {
            // NOTE: up to the stream, bounded like any command (no
            // OutcomeUnknown: `commits` stays false for a stream, a read).
            let abort = expiry.abort;
            let deadline = deadline::expired(bound, expiry.watch);
            let cut = async {
                match abort {
                    Some(switch) => switch.flipped().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                stream = fut => Ok(BoundedStream::new(stream?, bound, flipped, expiry)),
                () = deadline => match bound {
                    Some(b) => Err(expiry.expire(b).into()),
                    None => unreachable!("no deadline never fires"),
                },
                () = cut => match abort {
                    Some(switch) => Err(expiry.cut(switch).into()),
                    None => unreachable!("no switch never flips"),
                },
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
            cut: &mut self.cut,
            killer: self.killer.as_ref(),
            watch: self.watch.as_deref(),
            abort: self.abort.as_ref(),
            commits: false,
        };
        (run(&mut self.inner), expiry)
    }

    fn expiry(&mut self, command: &'static str) -> Expiry<'_> {
        Expiry {
            command,
            connection_id: self.inner.id(),
            timed_out: &mut self.timed_out,
            cut: &mut self.cut,
            killer: self.killer.as_ref(),
            watch: self.watch.as_deref(),
            abort: self.abort.as_ref(),
            commits: false,
        }
    }

    /// Whether the connection may carry session state the borrowers left
    /// behind since it was opened or last fully reset: some statement was
    /// not known to be harmless, or the connection was used raw.
    ///
    /// An open transaction is not part of this: the server's status flags
    /// show it.
    pub fn is_dirty(&self) -> bool {
        self.tracker.is_dirty()
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
        match self.tracker.status() {
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
                let ours = stmt.connection_id() == self.inner.id();
                if ours && self.tracker.is_harmless(stmt.id()) {
                    self.tracker.live();
                } else {
                    self.tracker.unknown_statement();
                }
                if ours {
                    // NOTE: after live()/unknown_statement(), which set it too.
                    self.tracker.executing(stmt.id());
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
            .field("dirty", &self.tracker.is_dirty())
            .field("timed_out", &self.timed_out)
            .field("cut", &self.cut)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}
