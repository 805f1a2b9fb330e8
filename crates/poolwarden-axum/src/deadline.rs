//! [`DeadlineLayer`]: every request gets a deadline; the checkouts made for
//! it ([`Db`](crate::Db), [`Tx`](crate::Tx), [`RequestContext::get`]) and
//! their commands end by it, and past it the client gets a `504` JSON answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::response::Response;
use http::{HeaderValue, Request, StatusCode};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::rejection::json_error;
use crate::request_id::{self, REQUEST_ID_HEADER};
use crate::tx_layer::BoxFuture;

/// The `error` code in the body of a response cut at the request's deadline.
pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";

const DEADLINE_MESSAGE: &str =
    "The request did not finish within its time limit; please try again later.";

/// The deadline of a request, in its extensions (set by [`DeadlineLayer`]).
#[derive(Debug, Clone)]
pub struct RequestDeadline {
    at: Instant,
    /// Set by the layer when it cuts the request, before the handler is
    /// dropped: the request's connections are then closed.
    cut: Arc<AtomicBool>,
}

impl RequestDeadline {
    /// Whether the request is late: cut by the layer, or past its deadline.
    /// A connection it still holds is closed, never reused.
    pub(crate) fn is_late(&self) -> bool {
        self.cut.load(Ordering::Acquire) || Instant::now() >= self.at
    }

    /// When the request's time is up.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The time left (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// A tower layer that gives each request a deadline: `timeout` after it
/// reached the layer, or a per-route default set with
/// [`route`](DeadlineLayer::route).
///
/// Beneath it, [`Db`](crate::Db), [`Tx`](crate::Tx) and
/// [`RequestContext::get`](crate::RequestContext::get) check out with the remaining time (the wait for a
/// connection, its validation and, with a manager that supports it, such as
/// `poolwarden-mysql`, every command on the connection end by the
/// deadline). When the deadline passes, the handler is dropped (a command in
/// flight is cancelled) and the client gets
///
/// ```json
/// {"error": "deadline_exceeded",
///  "message": "The request did not finish within its time limit; please try again later.",
///  "request_id": "4f1c…"}
/// ```
///
/// with status `504 Gateway Timeout`. A connection the request still holds
/// at its deadline is closed, never reused (its server may be the reason
/// the request was late); a transaction of a [`Tx`](crate::Tx) is not
/// committed. The request's id is made here when the client sent none
/// (and set in the `x-request-id` header), so the `504` and the logs of the
/// handler name the same id.
///
/// Add it with [`Router::layer`](axum::Router::layer), so that the matched
/// route is known for the per-route defaults; put it outside
/// [`TxLayer`](crate::TxLayer) (add it after) so that a late transaction is
/// rolled back, never committed.
///
/// ```
/// # use std::time::Duration;
/// # use axum::{routing::get, Router};
/// use poolwarden_axum::DeadlineLayer;
///
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "order" }))
///     .route("/reports/{id}", get(|| async { "report" }))
///     .layer(
///         DeadlineLayer::new(Duration::from_secs(5))
///             .route("/reports/{id}", Duration::from_secs(60)),
///     );
/// ```
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    timeouts: Arc<Timeouts>,
}

#[derive(Debug, Clone)]
struct Timeouts {
    default: Duration,
    routes: HashMap<String, Duration>,
}

impl DeadlineLayer {
    /// Every request gets `timeout`, unless its route has its own.
    pub fn new(timeout: Duration) -> Self {
        DeadlineLayer {
            timeouts: Arc::new(Timeouts {
                default: timeout,
                routes: HashMap::new(),
            }),
        }
    }

    /// Requests matched by the route pattern `route` (as given to
    /// `Router::route`, e.g. `/reports/{id}`) get `timeout` instead.
    pub fn route(mut self, route: impl Into<String>, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.timeouts)
            .routes
            .insert(route.into(), timeout);
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService {
            inner,
            timeouts: Arc::clone(&self.timeouts),
        }
    }
}

/// The service made by [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    timeouts: Arc<Timeouts>,
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
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
        let timeout = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|route| self.timeouts.routes.get(route.as_str()))
            .copied()
            .unwrap_or(self.timeouts.default);
        // `checked_add`: a huge timeout means no deadline.
        let at = Instant::now().checked_add(timeout);
        let cut = Arc::new(AtomicBool::new(false));
        if let Some(at) = at {
            request.extensions_mut().insert(RequestDeadline {
                at,
                cut: Arc::clone(&cut),
            });
        }
        let request_id = request_id::from_headers(request.headers());
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        // The clone is not ready; the ready service handles this request.
        let clone = self.inner.clone();
        let call = std::mem::replace(&mut self.inner, clone).call(request);
        let Some(at) = at else {
            return Box::pin(call);
        };
        Box::pin(async move {
            let mut call = Box::pin(call);
            match tokio::time::timeout_at(at, call.as_mut()).await {
                Ok(result) => result,
                Err(_elapsed) => {
                    // NOTE: the flag is set *before* the handler (and its
                    // `Db`/`Tx`) is dropped, so they close their connections.
                    cut.store(true, Ordering::Release);
                    drop(call);
                    tracing::warn!(
                        request_id,
                        %method,
                        path,
                        timeout_ms = timeout.as_millis() as u64,
                        "request passed its deadline; answering 504 (its connections are closed)"
                    );
                    Ok(json_error(
                        StatusCode::GATEWAY_TIMEOUT,
                        DEADLINE_EXCEEDED,
                        DEADLINE_MESSAGE,
                        Some(&request_id),
                    ))
                }
            }
        })
    }
}

/// The deadline [`DeadlineLayer`] gave the request these parts belong to.
pub(crate) fn of_parts(parts: &http::request::Parts) -> Option<RequestDeadline> {
    parts.extensions.get::<RequestDeadline>().cloned()
}
