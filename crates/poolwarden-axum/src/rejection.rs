//! What clients see when a connection cannot be had: a 503 with a small JSON
//! body and no internal details. Operators get the details in the logs.

use std::error::Error as StdError;
use std::fmt;

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};
use poolwarden::PoolError;

use crate::context::RequestContext;
use crate::log_limit::LogLimiter;

/// The `error` code in the body of a failed checkout.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

pub(crate) const UNAVAILABLE_MESSAGE: &str =
    "The database is temporarily unavailable; please try again later.";

/// A checkout failed: the rejection of [`Db`](crate::Db), and what a
/// handler's `?` makes of a [`PoolError`].
///
/// Its response is `503 Service Unavailable` with `Retry-After: 1` and
///
/// ```json
/// {"error": "database_unavailable",
///  "message": "The database is temporarily unavailable; please try again later.",
///  "request_id": "4f1c…"}
/// ```
///
/// The pool's message (holders, labels, source locations, driver errors)
/// never reaches the client: it is logged with `tracing::error!` when the
/// rejection is made by an extractor, or when the response is built for a
/// rejection made with `From<PoolError>`. A checkout timeout's log line is
/// the [`TimeoutError`](poolwarden::TimeoutError)'s message, which names the
/// pool's longest holders.
#[derive(Debug)]
pub struct DbRejection {
    error: PoolError,
    request_id: Option<String>,
    logged: bool,
}

impl DbRejection {
    /// A rejection for a checkout made for `ctx` from pool `pool`; logs the
    /// error with the request's details.
    pub(crate) fn logged(error: PoolError, ctx: &RequestContext, pool: &str) -> Self {
        log_checkout_error(&error, Some(ctx), Some(pool));
        DbRejection {
            error,
            request_id: Some(ctx.request_id().to_owned()),
            logged: true,
        }
    }

    /// A rejection for a failed [`RequestContext::get`] in a handler: logs
    /// the error with the request's id, method and route (which
    /// `From<PoolError>` cannot know).
    ///
    /// ```
    /// # use poolwarden::{Manager, Pool};
    /// # use poolwarden_axum::{DbRejection, RequestContext};
    /// async fn handler<M: Manager>(ctx: RequestContext, pool: Pool<M>) -> Result<String, DbRejection> {
    ///     let conn = ctx
    ///         .get(&pool)
    ///         .await
    ///         .map_err(|e| DbRejection::for_request(e, &ctx))?;
    ///     Ok(format!("connection {}", conn.connection_id()))
    /// }
    /// ```
    pub fn for_request(error: PoolError, ctx: &RequestContext) -> Self {
        log_checkout_error(&error, Some(ctx), None);
        DbRejection {
            error,
            request_id: Some(ctx.request_id().to_owned()),
            logged: true,
        }
    }

    /// The pool's error.
    pub fn error(&self) -> &PoolError {
        &self.error
    }

    /// The pool's error, by value.
    pub fn into_error(self) -> PoolError {
        self.error
    }

    /// The id of the request the checkout was for, when known.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl From<PoolError> for DbRejection {
    fn from(error: PoolError) -> Self {
        DbRejection {
            error,
            request_id: None,
            logged: false,
        }
    }
}

impl fmt::Display for DbRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not check out a database connection")
    }
}

impl StdError for DbRejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

impl IntoResponse for DbRejection {
    fn into_response(self) -> Response {
        if !self.logged {
            log_checkout_error(&self.error, None, None);
        }
        unavailable(
            DATABASE_UNAVAILABLE,
            UNAVAILABLE_MESSAGE,
            self.request_id.as_deref(),
        )
    }
}

/// Log a failed checkout with everything an operator needs, at most one
/// line per kind of failure per [`LOG_INTERVAL`](crate::LOG_INTERVAL), with
/// the count of those held back (an outage fails every request the same way).
fn log_checkout_error(error: &PoolError, ctx: Option<&RequestContext>, pool: Option<&str>) {
    let cause = match error {
        PoolError::Timeout(_) => "checkout timeout",
        PoolError::Unavailable { .. } => "database unavailable",
        PoolError::Fatal { .. } => "connection settings rejected",
        PoolError::Closed => "pool closed",
        _ => "checkout failed",
    };
    let Some(held_back) = LogLimiter::global().admit(cause) else {
        return;
    };
    let request_id = ctx.map(RequestContext::request_id);
    let method = ctx.map(|c| c.method().as_str());
    let route = ctx.map(RequestContext::route);
    match error {
        PoolError::Timeout(timeout) => tracing::error!(
            pool,
            request_id,
            method,
            route,
            error = %timeout,
            held_back,
            "database checkout timed out; answering 503 (the error names the pool's longest holders; `held_back` more like it since the last line)"
        ),
        _ => tracing::error!(
            pool,
            request_id,
            method,
            route,
            error = %error,
            source = error.source().map(tracing::field::display),
            held_back,
            "database checkout failed; answering 503 (`held_back` more like it since the last line)"
        ),
    }
}

/// A `503` with the JSON error body (and `Retry-After: 1`).
pub(crate) fn unavailable(code: &str, message: &str, request_id: Option<&str>) -> Response {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, code, message, request_id);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A JSON error body: `{"error": code, "message": message, "request_id": id}`.
pub(crate) fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: Option<&str>,
) -> Response {
    let mut body = serde_json::json!({ "error": code, "message": message });
    if let Some(id) = request_id {
        body["request_id"] = id.into();
    }
    (status, Json(body)).into_response()
}
