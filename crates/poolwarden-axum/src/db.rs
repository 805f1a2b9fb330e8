//! [`Db`]: a connection checked out for one request.

use std::fmt;
use std::ops::{Deref, DerefMut};

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use poolwarden::{Manager, Pool, PooledConnection};

use crate::context::RequestContext;
use crate::home::Home;
use crate::rejection::DbRejection;

const LIVE: &str = "a Db holds its connection until into_inner";

/// An axum extractor: a connection checked out for the request, returned to
/// the pool when the handler finishes (when the `Db` drops).
///
/// The pool comes from the router's state through [`FromRef`]: a state of
/// type `Pool<M>`, or an app state with a `Pool<M>` field and
/// `#[derive(FromRef)]` / a manual `impl FromRef<AppState> for Pool<M>`.
///
/// `Db<M>` derefs to the [`PooledConnection`] guard (which derefs to the
/// connection), so `db.label(..)`, `db.report_error(..)` and the
/// connection's own methods are all reachable through it.
///
/// # Labels and locations
/// The checkout is labelled `METHOD ROUTE req=ID` from the request's
/// [`RequestContext`]: for example `GET /reports/{id} req=4f1c…`. Its
/// source location, as leak reports and [`Pool::checkouts`] show it, is
/// **this extractor** inside `poolwarden-axum` (the extractor calls
/// [`Pool::get`], axum calls the extractor): the label, not the location,
/// says which handler holds the connection. A handler that wants its own
/// line in the reports checks out explicitly with
/// [`RequestContext::get`] instead.
///
/// # Deadline
/// Under a [`DeadlineLayer`](crate::DeadlineLayer) the checkout waits at
/// most until the request's deadline, and a `Db` still held when the
/// deadline has passed is closed when dropped, never reused.
///
/// # Failure
/// When no connection can be had within the pool's `checkout_timeout`, the
/// request is rejected with a [`DbRejection`]: a 503 with a JSON body and no
/// internals; the pool's error (for a timeout: its longest holders) is
/// logged with `tracing::error!`.
///
/// # Do not move it into spawned work
/// A `Db` belongs to its request. Moving it into a spawned task keeps the
/// connection checked out for as long as the task runs, which is how the
/// connections leaked in the post-mortem this crate was written after. Use
/// [`RequestContext::spawn`] and check out a new connection in the task.
/// When a `Db` is used or dropped in another tokio task than the one that
/// extracted it, a `tracing::warn!` says so (once).
///
/// ```
/// use axum::{routing::get, Router};
/// use poolwarden::{Manager, Pool};
/// use poolwarden_axum::Db;
///
/// async fn handler<M: Manager>(db: Db<M>) -> String {
///     // `db` derefs to the guard, and through it to `M::Connection`.
///     format!("using connection {}", db.connection_id())
/// }
///
/// fn app<M: Manager>(pool: Pool<M>) -> Router {
///     Router::new().route("/", get(handler::<M>)).with_state(pool)
/// }
/// ```
pub struct Db<M: Manager> {
    /// `None` only after `into_inner`.
    conn: Option<PooledConnection<M>>,
    ctx: RequestContext,
    home: Home,
}

impl<M: Manager> Db<M> {
    /// The request this connection was checked out for.
    pub fn context(&self) -> &RequestContext {
        &self.ctx
    }

    /// The guard, by value (still labelled with the request).
    pub fn into_inner(self) -> PooledConnection<M> {
        let mut this = self;
        this.home.check("Db", || this.ctx.label());
        this.conn.take().expect(LIVE)
    }
}

impl<M: Manager> Deref for Db<M> {
    type Target = PooledConnection<M>;

    fn deref(&self) -> &PooledConnection<M> {
        self.home.check("Db", || self.ctx.label());
        self.conn.as_ref().expect(LIVE)
    }
}

impl<M: Manager> DerefMut for Db<M> {
    fn deref_mut(&mut self) -> &mut PooledConnection<M> {
        self.home.check("Db", || self.ctx.label());
        self.conn.as_mut().expect(LIVE)
    }
}

impl<M: Manager> Drop for Db<M> {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            self.home.check("Db", || self.ctx.label());
            if self.ctx.is_late() {
                // Late: the server may be why; never hand it to another
                // request.
                conn.invalidate();
            }
        }
    }
}

impl<M: Manager> fmt::Debug for Db<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("conn", &self.conn)
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<M, S> FromRequestParts<S> for Db<M>
where
    M: Manager,
    Pool<M>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, DbRejection> {
        let pool = Pool::<M>::from_ref(state);
        let ctx = RequestContext::from_parts(parts);
        match ctx.get(&pool).await {
            Ok(conn) => Ok(Db {
                conn: Some(conn),
                ctx,
                home: Home::here(),
            }),
            Err(error) => Err(DbRejection::logged(error, &ctx, &pool.config().name)),
        }
    }
}
