//! [`Tx`]: a connection with a transaction open for one request.

use std::fmt;
use std::ops::{Deref, DerefMut};

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use poolwarden::{ErrorClass, Pool, PooledConnection, Probe};

use crate::context::RequestContext;
use crate::home::Home;
use crate::rejection::DbRejection;
use crate::tx_layer::{BoxFuture, CommitFailed, Pending, TxScope};
use crate::tx_rejection::TxRejection;
use poolwarden::Transactional;

const LIVE: &str = "a Tx holds its connection until it is ended";

/// An axum extractor: a connection checked out for the request with a
/// transaction begun on it ([`Transactional::begin`]).
///
/// With [`TxLayer`](crate::TxLayer) on the route, the transaction is ended
/// for you when the handler has returned: **committed** when the response is
/// a success (`2xx`, `3xx`), **rolled back** otherwise. Extracting a `Tx`
/// on a route without the layer is a configuration bug: the request fails
/// with a `500` and a `tracing::error!` naming the missing layer.
///
/// [`commit`](Tx::commit) and [`rollback`](Tx::rollback) end it early,
/// whatever the response will be.
///
/// # Never committed by accident
/// A `Tx` that is dropped without reaching the layer's verdict is **never
/// committed**: dropped by a panicking handler, the connection is closed by
/// the pool (the server rolls back); dropped anywhere else after the
/// response was decided (moved into a spawned task, say), or by a cancelled
/// request, the connection goes back with the transaction open and the
/// pool's reset on return rolls it back (or, when the manager's
/// [`probe`](poolwarden::Manager::probe) does not report the open
/// transaction, the connection is closed).
///
/// Like [`Db`](crate::Db), it derefs to the [`PooledConnection`], is
/// labelled with the request (`POST /orders req=…`), and its checkout's
/// source location is this extractor.
///
/// ```
/// # use poolwarden::Pool;
/// # use poolwarden_axum::{Transactional, Tx};
/// async fn transfer<M: Transactional>(mut tx: Tx<M>) -> Result<&'static str, http::StatusCode> {
///     let conn: &mut M::Connection = &mut tx;
///     // ... two writes through `conn` ...
///     # let _ = conn;
///     Ok("done") // 200: committed by TxLayer; an Err(500) would roll back
/// }
/// ```
pub struct Tx<M: Transactional> {
    /// `None` once ended.
    conn: Option<PooledConnection<M>>,
    pool: Pool<M>,
    scope: TxScope,
    ctx: RequestContext,
    home: Home,
}

impl<M: Transactional> Tx<M> {
    /// The request this transaction belongs to.
    pub fn context(&self) -> &RequestContext {
        &self.ctx
    }

    /// Commit now. The connection goes back to the pool.
    ///
    /// # Errors
    /// The driver's error. The transaction is then over either way: the
    /// error is reported to the pool and the connection is closed (the
    /// server rolls back anything still open).
    pub async fn commit(mut self) -> Result<(), M::Error> {
        let mut conn = self.conn.take().expect(LIVE);
        commit(&self.pool, &mut conn, &self.ctx).await
    }

    /// Roll back now. The connection goes back to the pool.
    ///
    /// A rollback that fails or takes longer than the pool's `reset_timeout`
    /// is logged and the connection closed, which rolls back too.
    pub async fn rollback(mut self) {
        let mut conn = self.conn.take().expect(LIVE);
        rollback(&self.pool, &mut conn, &self.ctx).await;
    }
}

/// Commit `conn`'s transaction; on failure report, log and doom it.
async fn commit<M: Transactional>(
    pool: &Pool<M>,
    conn: &mut PooledConnection<M>,
    ctx: &RequestContext,
) -> Result<(), M::Error> {
    let result = pool.manager().commit(&mut **conn).await;
    if let Err(error) = &result {
        let class = conn.report_error(error);
        conn.invalidate();
        let what = if outcome_unknown(class) {
            "commit's answer lost; the transaction's changes may or may not have been saved"
        } else {
            "commit failed; the transaction's changes were not saved"
        };
        tracing::error!(
            pool = %pool.config().name,
            request_id = ctx.request_id(),
            method = %ctx.method(),
            route = ctx.route(),
            %error,
            ?class,
            "{what}"
        );
    }
    result
}

/// Whether a commit that failed with an error of `class` may have been
/// applied: the connection failed or went silent while committing, so the
/// server's answer was lost; a refusal by the server (`Keep`, `Usage`,
/// `Fatal`) saved nothing.
fn outcome_unknown(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::Disconnect | ErrorClass::Unresponsive | ErrorClass::Broken
    )
}

/// Roll back `conn`'s transaction, bounded by the pool's `reset_timeout`;
/// on failure report, log and doom it.
async fn rollback<M: Transactional>(
    pool: &Pool<M>,
    conn: &mut PooledConnection<M>,
    ctx: &RequestContext,
) {
    let limit = pool.config().reset_timeout;
    let result = tokio::time::timeout(limit, pool.manager().rollback(&mut **conn)).await;
    let problem = match result {
        Ok(Ok(())) => return,
        Ok(Err(error)) => {
            conn.report_error(&error);
            error.to_string()
        }
        Err(_) => format!("rollback took longer than reset_timeout ({limit:?})"),
    };
    conn.invalidate();
    tracing::warn!(
        pool = %pool.config().name,
        request_id = ctx.request_id(),
        error = problem,
        "rollback failed; closing the connection (the server rolls the transaction back)"
    );
}

/// A transaction handed to [`TxLayer`](crate::TxLayer) when its `Tx` drops.
struct Parked<M: Transactional> {
    pool: Pool<M>,
    /// `None` once ended.
    conn: Option<PooledConnection<M>>,
    ctx: RequestContext,
}

impl<M: Transactional> Pending for Parked<M> {
    fn finish(mut self: Box<Self>, commit_it: bool) -> BoxFuture<Result<(), CommitFailed>> {
        Box::pin(async move {
            let mut conn = self.conn.take().expect(LIVE);
            if !commit_it {
                rollback(&self.pool, &mut conn, &self.ctx).await;
                return Ok(());
            }
            commit(&self.pool, &mut conn, &self.ctx)
                .await
                .map_err(|error| CommitFailed {
                    request_id: self.ctx.request_id().to_owned(),
                    outcome_unknown: outcome_unknown(self.pool.manager().classify(&error)),
                })
        })
    }
}

impl<M: Transactional> Drop for Parked<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            abandon(&self.pool, conn, &self.ctx);
        }
    }
}

/// Give back a connection whose transaction was never ended: the pool's
/// reset rolls it back, or, when the manager's probe does not see the open
/// transaction or the request was cut at its deadline
/// ([`DeadlineLayer`](crate::DeadlineLayer)), the connection is closed
/// (which rolls the transaction back on the server).
fn abandon<M: Transactional>(pool: &Pool<M>, mut conn: PooledConnection<M>, ctx: &RequestContext) {
    if ctx.is_late() || pool.manager().probe(&mut *conn) == Probe::Clean {
        conn.invalidate();
    }
}

impl<M: Transactional> Deref for Tx<M> {
    type Target = PooledConnection<M>;

    fn deref(&self) -> &PooledConnection<M> {
        self.home.check("Tx", || self.ctx.label());
        self.conn.as_ref().expect(LIVE)
    }
}

impl<M: Transactional> DerefMut for Tx<M> {
    fn deref_mut(&mut self) -> &mut PooledConnection<M> {
        self.home.check("Tx", || self.ctx.label());
        self.conn.as_mut().expect(LIVE)
    }
}

impl<M: Transactional> Drop for Tx<M> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if std::thread::panicking() {
            // The pool closes a connection returned by a panicking thread.
            tracing::debug!(
                request_id = self.ctx.request_id(),
                "Tx dropped by a panic; not committed"
            );
            return;
        }
        self.home.check("Tx", || self.ctx.label());
        let parked = Box::new(Parked {
            pool: self.pool.clone(),
            conn: Some(conn),
            ctx: self.ctx.clone(),
        });
        if let Err(late) = self.scope.park(parked) {
            tracing::warn!(
                pool = %self.pool.config().name,
                label = %self.ctx.label(),
                "a Tx outlived its request; its transaction is rolled back, never committed"
            );
            drop(late);
        }
    }
}

impl<M: Transactional> fmt::Debug for Tx<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("conn", &self.conn)
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl<M, S> FromRequestParts<S> for Tx<M>
where
    M: Transactional,
    Pool<M>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = TxRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, TxRejection> {
        let ctx = RequestContext::from_parts(parts);
        let Some(scope) = parts.extensions.get::<TxScope>().cloned() else {
            return Err(TxRejection::missing_layer(&ctx));
        };
        let pool = Pool::<M>::from_ref(state);
        let mut conn = match ctx.get(&pool).await {
            Ok(conn) => conn,
            Err(e) => {
                let rejection = DbRejection::logged(e, &ctx, &pool.config().name);
                return Err(TxRejection::Checkout(rejection));
            }
        };
        if let Err(error) = pool.manager().begin(&mut *conn).await {
            conn.report_error(&error);
            conn.invalidate();
            return Err(TxRejection::begin(error, &ctx, &pool.config().name));
        }
        Ok(Tx {
            conn: Some(conn),
            pool,
            scope,
            ctx,
            home: Home::here(),
        })
    }
}
