//! The driver's query API on [`MySqlConn`](crate::MySqlConn), every command tracked and
//! bounded by its deadline.

use mysql_async::prelude::{AsQuery, FromRow, Queryable, StatementLike};
use mysql_async::{BinaryProtocol, Params, QueryResult, ResultSetStream, Statement, TextProtocol};

use crate::conn::{BoxFuture, MySqlConn};

/// The driver's query API, every command bounded by the deadline. `query*`
/// and `prep` see the SQL text; the
/// `exec*` methods reached **through this trait** cannot (mysql_async's
/// `StatementLike` hides it) and mark the connection dirty. Method calls on
/// the guard (`conn.exec_drop(...)`) resolve to [`MySqlConn`](crate::MySqlConn)'s own `exec*`
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
        let (changes, commit) = self.tracker.effect(&query.as_query());
        let harmless = !changes;
        let before = self.session().status;
        self.tracker.preparing(before);
        Box::pin(async move {
            let stmt = self.bounded("prep", move |c| c.prep(query)).await?;
            self.tracker.prepared(stmt.id(), harmless, commit);
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
