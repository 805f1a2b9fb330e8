//! [`ClusterConn`]: a [`MySqlConn`] that knows its node.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql_async::prelude::{AsQuery, FromRow, Queryable, StatementLike};
use mysql_async::{BinaryProtocol, Params, QueryResult, ResultSetStream, Statement, TextProtocol};

use super::manager::Shared;
use crate::conn::{BoxFuture, MySqlConn};

/// A pooled connection of a [`ClusterManager`](crate::ClusterManager): a
/// [`MySqlConn`] (it dereferences to one, so the query API and the session
/// tracking are the same) plus the node it belongs to and the node
/// generation it was opened in.
pub struct ClusterConn {
    pub(crate) conn: MySqlConn,
    pub(crate) node: usize,
    pub(crate) generation: u64,
    shared: Arc<Shared>,
}

impl ClusterConn {
    pub(crate) fn new(conn: MySqlConn, node: usize, generation: u64, shared: Arc<Shared>) -> Self {
        shared.nodes.nodes[node]
            .open
            .fetch_add(1, Ordering::Relaxed);
        ClusterConn {
            conn,
            node,
            generation,
            shared,
        }
    }

    /// The node's position in the manager's node list (the URL's order), from 0.
    pub fn node(&self) -> usize {
        self.node
    }

    /// The node's `host:port`.
    pub fn address(&self) -> &str {
        &self.shared.nodes.nodes[self.node].address
    }

    /// Whether the node's connections were retired since this one opened
    /// (the node failed, or the writer moved): the pool closes it at its
    /// next checkout or return.
    pub fn is_retired(&self) -> bool {
        self.shared.nodes.generation(self.node) != self.generation
    }
}

impl Drop for ClusterConn {
    fn drop(&mut self) {
        self.shared.nodes.nodes[self.node]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Deref for ClusterConn {
    type Target = MySqlConn;

    fn deref(&self) -> &MySqlConn {
        &self.conn
    }
}

/// Not raw use: [`MySqlConn`] still tracks what goes through it.
impl DerefMut for ClusterConn {
    fn deref_mut(&mut self) -> &mut MySqlConn {
        &mut self.conn
    }
}

/// The driver's query API, passed through to the [`MySqlConn`] (tracked and
/// bounded the same way), for generic code over `impl Queryable` and for
/// `&mut *guard` where mysql_async wants a `Queryable`.
impl Queryable for ClusterConn {
    fn ping(&mut self) -> BoxFuture<'_, ()> {
        Queryable::ping(&mut self.conn)
    }

    fn query_iter<'a, Q>(
        &'a mut self,
        query: Q,
    ) -> BoxFuture<'a, QueryResult<'a, 'static, TextProtocol>>
    where
        Q: AsQuery + 'a,
    {
        Queryable::query_iter(&mut self.conn, query)
    }

    fn prep<'a, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Statement>
    where
        Q: AsQuery + 'a,
    {
        Queryable::prep(&mut self.conn, query)
    }

    fn close(&mut self, stmt: Statement) -> BoxFuture<'_, ()> {
        Queryable::close(&mut self.conn, stmt)
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
        Queryable::exec_iter(&mut self.conn, stmt, params)
    }

    fn exec_batch<'a: 'b, 'b, S, P, I>(&'a mut self, stmt: S, params_iter: I) -> BoxFuture<'b, ()>
    where
        S: StatementLike + 'b,
        I: IntoIterator<Item = P> + Send + 'b,
        I::IntoIter: Send,
        P: Into<Params> + Send,
    {
        Queryable::exec_batch(&mut self.conn, stmt, params_iter)
    }

    fn query<'a, T, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Vec<T>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
    {
        Queryable::query(&mut self.conn, query)
    }

    fn query_first<'a, T, Q>(&'a mut self, query: Q) -> BoxFuture<'a, Option<T>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
    {
        Queryable::query_first(&mut self.conn, query)
    }

    fn query_map<'a, T, F, Q, U>(&'a mut self, query: Q, f: F) -> BoxFuture<'a, Vec<U>>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
        F: FnMut(T) -> U + Send + 'a,
        U: Send,
    {
        Queryable::query_map(&mut self.conn, query, f)
    }

    fn query_fold<'a, T, F, Q, U>(&'a mut self, query: Q, init: U, f: F) -> BoxFuture<'a, U>
    where
        Q: AsQuery + 'a,
        T: FromRow + Send + 'static,
        F: FnMut(U, T) -> U + Send + 'a,
        U: Send + 'a,
    {
        Queryable::query_fold(&mut self.conn, query, init, f)
    }

    fn query_drop<'a, Q>(&'a mut self, query: Q) -> BoxFuture<'a, ()>
    where
        Q: AsQuery + 'a,
    {
        Queryable::query_drop(&mut self.conn, query)
    }

    fn exec<'a: 'b, 'b, T, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, Vec<T>>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        Queryable::exec(&mut self.conn, stmt, params)
    }

    fn exec_first<'a: 'b, 'b, T, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, Option<T>>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
        T: FromRow + Send + 'static,
    {
        Queryable::exec_first(&mut self.conn, stmt, params)
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
        Queryable::exec_map(&mut self.conn, stmt, params, f)
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
        Queryable::exec_fold(&mut self.conn, stmt, params, init, f)
    }

    fn exec_drop<'a: 'b, 'b, S, P>(&'a mut self, stmt: S, params: P) -> BoxFuture<'b, ()>
    where
        S: StatementLike + 'b,
        P: Into<Params> + Send + 'b,
    {
        Queryable::exec_drop(&mut self.conn, stmt, params)
    }

    fn query_stream<'a, T, Q>(
        &'a mut self,
        query: Q,
    ) -> BoxFuture<'a, ResultSetStream<'a, 'a, 'static, T, TextProtocol>>
    where
        T: Unpin + FromRow + Send + 'static,
        Q: AsQuery + 'a,
    {
        Queryable::query_stream(&mut self.conn, query)
    }

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
        Queryable::exec_stream(&mut self.conn, stmt, params)
    }
}

impl fmt::Debug for ClusterConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConn")
            .field("node", &self.address())
            .field("generation", &self.generation)
            .field("conn", &self.conn)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generic code over `impl Queryable` takes a `ClusterConn` (the
    /// guard's `&mut *conn`).
    #[test]
    fn a_cluster_connection_is_queryable() {
        fn queryable<T: Queryable>() {}
        queryable::<ClusterConn>();
    }
}
