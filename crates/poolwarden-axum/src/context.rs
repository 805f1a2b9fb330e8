//! [`RequestContext`]: who a checkout is for (method, matched route, request
//! id), carried into the work a request hands off.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath};
use http::request::Parts;
use http::Method;
use poolwarden::{Manager, Pool, PoolError, PooledConnection};
use tracing::Instrument;

use crate::deadline::{self, RequestDeadline};
use crate::request_id;

/// The request a piece of work belongs to: its method, matched route and
/// request id. An axum extractor; cheap to clone (two reference counts).
///
/// Every checkout made through a `RequestContext` is labelled with the
/// request, so leak reports, timeout errors and
/// [`Pool::checkouts`] name the request that is holding the connection:
///
/// - in the handler: `GET /reports/{id} req=4f1c…`
/// - in work handed off with [`spawn`](RequestContext::spawn) or
///   [`task`](RequestContext::task):
///   `export (spawned from GET /reports/{id} req=4f1c…)`
///
/// The route is axum's [`MatchedPath`] (the pattern, not the raw path, so
/// ids in URLs do not leak into labels); requests that matched no route use
/// the raw path. The request id comes from the `x-request-id` header when it
/// is 1 to 128 visible ASCII characters, and is a fresh UUID otherwise. It is
/// computed once per request: [`Db`](crate::Db), [`Tx`](crate::Tx) and
/// `RequestContext` extracted from one request all share it.
///
/// # Handing work off the request path
///
/// A [`Db`](crate::Db) guard belongs to its request: it is returned when the
/// handler finishes. Work that outlives the request (a spawned task) must
/// take **its own** connection, and should take it through the context so
/// the connection is labelled with the request that started the work and
/// located at the task's own code:
///
/// ```
/// # use poolwarden_axum::RequestContext;
/// # use poolwarden::{Manager, Pool};
/// async fn start_export<M: Manager>(ctx: RequestContext, pool: Pool<M>) {
///     ctx.spawn("export", move |ctx| async move {
///         // Labelled "export (spawned from POST /exports req=…)", located
///         // here: a leak report points at this line.
///         let conn = ctx.get(&pool).await?;
///         // ... use conn; it is returned when this task drops it ...
///         # drop(conn);
///         Ok::<_, poolwarden::PoolError>(())
///     });
/// }
/// ```
#[derive(Clone)]
pub struct RequestContext {
    request: Arc<RequestInfo>,
    task: Option<Arc<str>>,
    /// The request's deadline ([`DeadlineLayer`](crate::DeadlineLayer));
    /// not inherited by [`task`](RequestContext::task)s.
    deadline: Option<RequestDeadline>,
}

struct RequestInfo {
    method: Method,
    route: String,
    request_id: String,
}

impl RequestContext {
    /// A context for a request with this method, route and request id.
    /// Mostly for tests and for non-HTTP entry points; handlers extract it.
    ///
    /// ```
    /// # use poolwarden_axum::RequestContext;
    /// let ctx = RequestContext::new(http::Method::GET, "/reports/{id}", "abc");
    /// assert_eq!(ctx.label(), "GET /reports/{id} req=abc");
    /// ```
    pub fn new(method: Method, route: impl Into<String>, request_id: impl Into<String>) -> Self {
        RequestContext {
            request: Arc::new(RequestInfo {
                method,
                route: route.into(),
                request_id: request_id.into(),
            }),
            task: None,
            deadline: None,
        }
    }

    /// The context of the request these parts belong to, computed on first
    /// use and cached in the request's extensions.
    ///
    /// The route is known once the router has matched the request: in
    /// handlers and in layers added with `Router::layer` /
    /// `MethodRouter::layer`. A middleware wrapped *around* the router that
    /// calls this first caches the raw path instead.
    pub fn from_parts(parts: &mut Parts) -> Self {
        let deadline = deadline::of_parts(parts);
        if let Some(ctx) = parts.extensions.get::<RequestContext>() {
            return ctx.clone().with_deadline(deadline);
        }
        let route = match parts.extensions.get::<MatchedPath>() {
            Some(m) => m.as_str().to_owned(),
            None => parts.uri.path().to_owned(),
        };
        let ctx = RequestContext::new(
            parts.method.clone(),
            route,
            request_id::from_headers(&parts.headers),
        );
        parts.extensions.insert(ctx.clone());
        ctx.with_deadline(deadline)
    }

    fn with_deadline(mut self, deadline: Option<RequestDeadline>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The request's deadline, if it has one
    /// ([`DeadlineLayer`](crate::DeadlineLayer)): checkouts through this
    /// context end by it.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.as_ref().map(RequestDeadline::at)
    }

    /// Whether the request was cut at its deadline or is past it: a
    /// connection it still holds is closed, never reused.
    pub(crate) fn is_late(&self) -> bool {
        self.deadline.as_ref().is_some_and(RequestDeadline::is_late)
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.request.method
    }

    /// The request's matched route (`/reports/{id}`), or its raw path when
    /// no route matched.
    pub fn route(&self) -> &str {
        &self.request.route
    }

    /// The request's id.
    pub fn request_id(&self) -> &str {
        &self.request.request_id
    }

    /// The task name, for a context made by [`task`](RequestContext::task).
    pub fn task_name(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The label checkouts made through this context carry:
    /// `GET /reports/{id} req=abc`, or
    /// `export (spawned from GET /reports/{id} req=abc)` for a task.
    ///
    /// ```
    /// # use poolwarden_axum::RequestContext;
    /// let ctx = RequestContext::new(http::Method::GET, "/reports/{id}", "abc");
    /// assert_eq!(
    ///     ctx.task("export").label(),
    ///     "export (spawned from GET /reports/{id} req=abc)"
    /// );
    /// ```
    pub fn label(&self) -> String {
        let r = &self.request;
        match &self.task {
            None => format!("{} {} req={}", r.method, r.route, r.request_id),
            Some(task) => format!(
                "{task} (spawned from {} {} req={})",
                r.method, r.route, r.request_id
            ),
        }
    }

    /// A context for work handed off the request path: same request, with a
    /// task name (a later call replaces the name). The work outlives the
    /// request, so it does not inherit the request's deadline.
    pub fn task(&self, name: impl Into<Cow<'static, str>>) -> RequestContext {
        let name: Cow<'static, str> = name.into();
        RequestContext {
            request: Arc::clone(&self.request),
            task: Some(Arc::from(name.as_ref())),
            deadline: None,
        }
    }

    /// Check out a connection labelled with this context, waiting at most
    /// the pool's `checkout_timeout` or until the request's
    /// [`deadline`](RequestContext::deadline), whichever is earlier
    /// ([`Pool::get_until`]: the deadline then also bounds the connection's
    /// commands, with a manager that supports it).
    ///
    /// The checkout's source location is **the caller of this method**
    /// (`#[track_caller]`), so leak reports point at the code that holds the
    /// connection, and the label names the request. Use it in handlers that
    /// check out explicitly and in spawned work.
    ///
    /// # Errors
    /// As [`Pool::get`]. In a handler, `?` turns the error into a
    /// [`DbRejection`](crate::DbRejection) (a 503).
    ///
    /// # Cancel safety
    /// As [`Pool::get`].
    #[track_caller]
    pub fn get<'p, M: Manager>(
        &self,
        pool: &'p Pool<M>,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + 'p {
        // Called here, not in an async block, so that `#[track_caller]`
        // records our caller; boxed to unify the two future types.
        let checkout: Pin<Box<dyn Future<Output = _> + Send + 'p>> = match self.deadline() {
            // The deadline also goes to the manager (`on_hand_out`), which
            // bounds the connection's commands by it.
            Some(deadline) => Box::pin(pool.get_until(deadline)),
            None => Box::pin(pool.get()),
        };
        self.labelled(checkout)
    }

    /// Like [`get`](RequestContext::get) with another checkout timeout.
    ///
    /// # Errors
    /// As [`Pool::get`].
    #[track_caller]
    pub fn get_timeout<'p, M: Manager>(
        &self,
        pool: &'p Pool<M>,
        timeout: Duration,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + 'p {
        let checkout = pool.get_timeout(timeout);
        self.labelled(checkout)
    }

    fn labelled<'p, M: Manager>(
        &self,
        checkout: impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + 'p,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + 'p {
        let label = self.label();
        async move {
            let mut conn = checkout.await?;
            conn.label(label);
            Ok(conn)
        }
    }

    /// Hand work off the request path: spawn `work` on the current tokio
    /// runtime with a context for task `name`, inside a tracing span
    /// (`poolwarden_task`, with the task name and request id).
    ///
    /// The work must take its own connection, with
    /// [`get`](RequestContext::get) on the context it is given; never move
    /// the request's [`Db`](crate::Db) into it (that connection would be held
    /// past the request, which is how the service in the post-mortem leaked
    /// its connections).
    ///
    /// # Panics
    /// Outside a tokio runtime, like [`tokio::spawn`].
    #[track_caller]
    pub fn spawn<F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> tokio::task::JoinHandle<Fut::Output>
    where
        F: FnOnce(RequestContext) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let ctx = self.task(name);
        let span = tracing::info_span!(
            "poolwarden_task",
            task = ctx.task_name().unwrap_or_default(),
            request_id = ctx.request_id(),
            method = %ctx.method(),
            route = ctx.route(),
        );
        tokio::spawn(work(ctx).instrument(span))
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("method", self.method())
            .field("route", &self.route())
            .field("request_id", &self.request_id())
            .field("task", &self.task_name())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(RequestContext::from_parts(parts))
    }
}
