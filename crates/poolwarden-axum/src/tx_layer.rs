//! [`TxLayer`]: commits the request's transactions when the response is a
//! success, rolls them back otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use http::Request;
use parking_lot::Mutex;
use tower::{Layer, Service};

use crate::rejection;

/// The `error` code in the body of a response whose commit the server
/// refused: nothing was saved.
pub const TRANSACTION_FAILED: &str = "transaction_failed";

/// The `error` code in the body of a response whose commit's answer was
/// lost (the connection failed or went silent while committing): the
/// changes may or may not have been saved.
pub const COMMIT_OUTCOME_UNKNOWN: &str = "commit_outcome_unknown";

const TRANSACTION_FAILED_MESSAGE: &str =
    "The request could not be completed and nothing was saved; please try again later.";

const COMMIT_OUTCOME_UNKNOWN_MESSAGE: &str = "The database's answer to the commit was lost: the \
     request's changes may or may not have been saved. Check before retrying, or retry with the \
     same idempotency key if the service supports one.";

/// A commit that failed: whose request, and whether its outcome is known.
pub(crate) struct CommitFailed {
    pub(crate) request_id: String,
    /// The connection failed or went silent during the commit (its error
    /// class was `Disconnect`, `Unresponsive` or `Broken`): the server
    /// may have committed. Else the server refused it: nothing was saved.
    pub(crate) outcome_unknown: bool,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A transaction waiting for the response's verdict.
pub(crate) trait Pending: Send {
    /// Commit (`true`) or roll back. `Err` when a commit failed.
    fn finish(self: Box<Self>, commit: bool) -> BoxFuture<Result<(), CommitFailed>>;
}

/// The request's transactions, shared by [`TxLayer`] and the
/// [`Tx`](crate::Tx) extractors below it through the request's extensions.
#[derive(Clone, Default)]
pub(crate) struct TxScope(Arc<Mutex<ScopeState>>);

#[derive(Default)]
struct ScopeState {
    closed: bool,
    pending: Vec<Box<dyn Pending>>,
}

impl TxScope {
    /// Hand a finished-with transaction to the layer. `Err` when the
    /// response has already been decided (the `Tx` outlived its request).
    pub(crate) fn park(&self, tx: Box<dyn Pending>) -> Result<(), Box<dyn Pending>> {
        let mut st = self.0.lock();
        if st.closed {
            return Err(tx);
        }
        st.pending.push(tx);
        Ok(())
    }

    fn close(&self) -> Vec<Box<dyn Pending>> {
        let mut st = self.0.lock();
        st.closed = true;
        std::mem::take(&mut st.pending)
    }

    /// Commit or roll back everything parked. After a failed commit the
    /// others are rolled back. Returns the first failed commit.
    async fn finish(&self, commit: bool) -> Option<CommitFailed> {
        let mut failed = None;
        for tx in self.close() {
            if let Err(e) = tx.finish(commit && failed.is_none()).await {
                failed.get_or_insert(e);
            }
        }
        failed
    }
}

/// A tower layer that ends the transactions begun by [`Tx`](crate::Tx)
/// extractors beneath it: after the handler returns, a `2xx` or `3xx`
/// response **commits**, anything else **rolls back**.
///
/// If the commit fails, the client does not get the success response: it
/// gets a `503` with `{"error": "transaction_failed", ...}` when the server
/// refused the commit (nothing was saved), or `{"error":
/// "commit_outcome_unknown", ...}` when its answer was lost (the error's
/// class is `Disconnect`, `Unresponsive` or `Broken`: the changes may or may
/// not have been saved). The driver's error is logged, not sent. If the handler panics, the transaction is
/// never committed: the connection is dropped while panicking and the pool
/// closes it, so the server rolls it back. If the request is cancelled (the
/// client went away), the connection goes back uncommitted and the pool's
/// reset rolls it back.
///
/// Add it with [`Router::layer`](axum::Router::layer) (or around a router
/// whose handlers use `Tx`). Several `Tx` in one request (on several pools)
/// are ended one after the other: that is not a distributed transaction.
///
/// ```
/// # use axum::{routing::post, Router};
/// # use poolwarden::Pool;
/// # use poolwarden_axum::{Transactional, Tx, TxLayer};
/// async fn create<M: Transactional>(tx: Tx<M>) -> http::StatusCode {
///     // ... write through `tx` ...
///     # drop(tx);
///     http::StatusCode::CREATED // committed after this returns
/// }
///
/// fn app<M: Transactional>(pool: Pool<M>) -> Router {
///     Router::new()
///         .route("/orders", post(create::<M>))
///         .layer(TxLayer::new())
///         .with_state(pool)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TxLayer {
    _private: (),
}

impl TxLayer {
    /// The layer.
    pub fn new() -> Self {
        TxLayer::default()
    }
}

impl<S> Layer<S> for TxLayer {
    type Service = TxService<S>;

    fn layer(&self, inner: S) -> TxService<S> {
        TxService { inner }
    }
}

/// The service made by [`TxLayer`].
#[derive(Debug, Clone)]
pub struct TxService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TxService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let scope = TxScope::default();
        request.extensions_mut().insert(scope.clone());
        // The clone is not ready; the ready service handles this request.
        let clone = self.inner.clone();
        let call = std::mem::replace(&mut self.inner, clone).call(request);
        Box::pin(async move {
            let result = call.await;
            let commit =
                matches!(&result, Ok(r) if r.status().is_success() || r.status().is_redirection());
            match (result, scope.finish(commit).await) {
                (Ok(_), Some(failed)) => {
                    let (code, message) = if failed.outcome_unknown {
                        (COMMIT_OUTCOME_UNKNOWN, COMMIT_OUTCOME_UNKNOWN_MESSAGE)
                    } else {
                        (TRANSACTION_FAILED, TRANSACTION_FAILED_MESSAGE)
                    };
                    Ok(rejection::unavailable(
                        code,
                        message,
                        Some(&failed.request_id),
                    ))
                }
                (result, _) => result,
            }
        })
    }
}
