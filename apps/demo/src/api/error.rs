//! API errors: a status and the JSON error shape ([`ErrorBody`], defined
//! here and nowhere else in the demo). Client mistakes are 4xx with a
//! message that says what to fix; server trouble is 5xx without internals
//! (they go to the log, rate-limited).
//!
//! What a database error answers is decided here and nowhere else
//! ([`From<QueryError>`]; each backend only sorts its codes into a
//! [`Kind`]):
//! * a missing referenced row is 404, a duplicate or a referenced row 409;
//! * a lost race (deadlock, lock wait timeout, serialization failure) is
//!   retried by `api/retry.rs` and, when retries do not help, 503 `retry`
//!   with `Retry-After` (the transaction was rolled back; retrying with the
//!   same `Idempotency-Key` is safe);
//! * a value out of range is 422;
//! * a command cut at its deadline is 504 `deadline_exceeded` when the
//!   deadline was the request's, else 503 `database_unavailable` with
//!   `Retry-After`: the server did not answer, it is not a bug;
//! * a lost connection (server restart, killed session, closed socket) or a
//!   command cut by the pool closing or a cluster node marked down is 503
//!   `database_unavailable` with `Retry-After`: nothing was committed, the
//!   request can be sent again;
//! * a write whose commit was sent and whose answer was lost is 503
//!   `outcome_unknown` with `Retry-After`: it may or may not have been
//!   applied. Not 500 (nothing is wrong with the request or the service),
//!   not 504 (no deadline of the client's passed, and a gateway timeout
//!   says nothing about the write); 503 because the remedy is the same as
//!   for an unavailable database, a retry, and the distinct `error` code
//!   tells the client which retry: with the same `Idempotency-Key`, which
//!   the demo stores in the same transaction as the write, so the retry
//!   returns the first answer if the write was applied and runs it if not.
//!
//! Anything else is 500 (logged).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::{DbRejection, LogLimiter, DATABASE_UNAVAILABLE, DEADLINE_EXCEEDED};
use serde::{Deserialize, Serialize};

use crate::store::{Kind, QueryError};

/// The JSON body of every error status: the same fields as
/// `poolwarden-axum`'s own answers (503 `database_unavailable`, 504
/// `deadline_exceeded`), so a client parses one shape. `request_id` is set
/// by `api/respond.rs` on every error answer that leaves the service.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
}

/// An error a handler returns.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: malformed request.
    BadRequest(String),
    /// 404.
    NotFound(&'static str),
    /// 404 with a message (a referenced row that is missing).
    Missing(String),
    /// 409: conflicts with existing data.
    Conflict(String),
    /// 413.
    TooLarge(String),
    /// 415.
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    Invalid(String),
    /// 408: the client did not send the body in time.
    TimedOut(String),
    /// 429: too much work queued; retry after `retry_after` seconds.
    Busy { message: String, retry_after: u64 },
    /// 503 with `Retry-After`: busy or shutting down; not retried here.
    Retry(String),
    /// 503 with `Retry-After`: the transaction lost a race with concurrent
    /// writes and was rolled back; `api/retry.rs` runs it again first.
    LostRace(String),
    /// 503: no connection (the pool's rejection, logged by it).
    Unavailable(DbRejection),
    /// 504 (the request's deadline) or 503 (another command deadline): the
    /// database did not answer a command in time; logged, not returned.
    NoAnswer {
        request_deadline: bool,
        detail: String,
    },
    /// 503 `database_unavailable` with `Retry-After`: the connection was
    /// lost or the command cut; nothing was committed. Logged, not returned.
    Lost(String),
    /// 503 `outcome_unknown` with `Retry-After`: a write's commit was sent
    /// and its answer lost. Logged, not returned.
    OutcomeUnknown(String),
    /// 500: a database error; details are logged, not returned.
    Database(String),
    /// 500: something else failed; the text is logged, not returned.
    Internal(String),
    /// 500: background work failed; the message (no internals) is returned.
    Failed(String),
}

impl From<QueryError> for ApiError {
    /// The one place database errors become statuses.
    fn from(e: QueryError) -> Self {
        match e.kind {
            Kind::MissingReference => ApiError::Missing(
                "the record this refers to does not exist (it may just have been deleted)"
                    .to_owned(),
            ),
            Kind::Referenced => {
                ApiError::Conflict("other records still refer to this one".to_owned())
            }
            Kind::Duplicate => {
                ApiError::Conflict("a record with this value already exists".to_owned())
            }
            Kind::Conflict => ApiError::LostRace(
                "the request conflicted with concurrent writes and was rolled back; retry it"
                    .to_owned(),
            ),
            Kind::OutOfRange => ApiError::Invalid(
                "a value is out of range (amounts are 64-bit integers of cents)".to_owned(),
            ),
            Kind::NoAnswer { request_deadline } => ApiError::NoAnswer {
                request_deadline,
                detail: e.detail,
            },
            Kind::Unavailable => ApiError::Lost(e.detail),
            Kind::OutcomeUnknown => ApiError::OutcomeUnknown(e.detail),
            Kind::Other => ApiError::Database(e.detail),
        }
    }
}

impl From<DbRejection> for ApiError {
    fn from(e: DbRejection) -> Self {
        ApiError::Unavailable(e)
    }
}

impl From<poolwarden::PoolError> for ApiError {
    fn from(e: poolwarden::PoolError) -> Self {
        ApiError::Unavailable(DbRejection::from(e))
    }
}

impl From<poolwarden::BulkheadError> for ApiError {
    fn from(e: poolwarden::BulkheadError) -> Self {
        match e {
            poolwarden::BulkheadError::Pool(e) => e.into(),
            other => {
                if let Some(held_back) = LogLimiter::global().admit("bulkhead full") {
                    tracing::warn!(error = %other, held_back, "bulkhead full");
                }
                ApiError::Retry("too much work of this kind is running; retry later".to_owned())
            }
        }
    }
}

/// The `error` code of a write whose outcome is unknown.
pub(crate) const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// The message of a write whose outcome is unknown.
pub(crate) const OUTCOME_UNKNOWN_MESSAGE: &str =
    "the connection to the database was lost before the write's answer came: it may or may not \
     have been applied. Retry with the same Idempotency-Key: if it was applied you get its first \
     answer, otherwise it runs now (a POST retried without a key may write twice; PATCH and \
     DELETE can be retried as they are)";

/// A JSON error response (its `request_id` is added on the way out).
pub(crate) fn body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: code.to_owned(),
        message: message.to_owned(),
        request_id: None,
    };
    (status, Json(body)).into_response()
}

fn retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Set on the response of a transaction that lost a race: `api/retry.rs`
/// runs such a request again (in-process only, never sent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LostRace;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => body(StatusCode::BAD_REQUEST, "bad_request", &m),
            ApiError::NotFound(what) => body(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("{what} not found"),
            ),
            ApiError::Missing(m) => body(StatusCode::NOT_FOUND, "not_found", &m),
            ApiError::Conflict(m) => body(StatusCode::CONFLICT, "conflict", &m),
            ApiError::TooLarge(m) => body(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &m),
            ApiError::UnsupportedMediaType(m) => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                &m,
            ),
            ApiError::Invalid(m) => body(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &m),
            ApiError::TimedOut(m) => body(StatusCode::REQUEST_TIMEOUT, "request_timeout", &m),
            ApiError::Busy {
                message,
                retry_after: seconds,
            } => retry_after(
                body(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", &message),
                seconds,
            ),
            ApiError::Retry(m) => {
                retry_after(body(StatusCode::SERVICE_UNAVAILABLE, "retry", &m), 1)
            }
            ApiError::LostRace(m) => {
                let mut response =
                    retry_after(body(StatusCode::SERVICE_UNAVAILABLE, "retry", &m), 1);
                response.extensions_mut().insert(LostRace);
                response
            }
            ApiError::Unavailable(rejection) => rejection.into_response(),
            ApiError::NoAnswer {
                request_deadline,
                detail,
            } => {
                if let Some(held_back) = LogLimiter::global().admit("database command deadline") {
                    tracing::warn!(error = %detail, held_back, "database command cut at its deadline");
                }
                if request_deadline {
                    body(
                        StatusCode::GATEWAY_TIMEOUT,
                        DEADLINE_EXCEEDED,
                        "the request did not finish within its time limit; try again later",
                    )
                } else {
                    retry_after(
                        body(
                            StatusCode::SERVICE_UNAVAILABLE,
                            DATABASE_UNAVAILABLE,
                            "the database did not answer in time; try again later",
                        ),
                        1,
                    )
                }
            }
            ApiError::Lost(detail) => {
                if let Some(held_back) = LogLimiter::global().admit("database connection lost") {
                    tracing::warn!(error = %detail, held_back, "database connection lost or command cut; answering 503");
                }
                retry_after(
                    body(
                        StatusCode::SERVICE_UNAVAILABLE,
                        DATABASE_UNAVAILABLE,
                        "the connection to the database was lost and nothing was saved; try again later",
                    ),
                    1,
                )
            }
            ApiError::OutcomeUnknown(detail) => {
                if let Some(held_back) = LogLimiter::global().admit("write outcome unknown") {
                    tracing::warn!(error = %detail, held_back, "a write's answer was lost: it may or may not have been applied; answering 503");
                }
                retry_after(
                    body(
                        StatusCode::SERVICE_UNAVAILABLE,
                        OUTCOME_UNKNOWN,
                        OUTCOME_UNKNOWN_MESSAGE,
                    ),
                    1,
                )
            }
            ApiError::Database(detail) => {
                if let Some(held_back) = LogLimiter::global().admit("database error") {
                    tracing::error!(error = %detail, held_back, "database error; answering 500");
                }
                let mut response = internal();
                // In-process only (never sent): lets the incident replay
                // tell which errors reached requests.
                response.extensions_mut().insert(ErrorDetail(detail));
                response
            }
            ApiError::Failed(m) => body(StatusCode::INTERNAL_SERVER_ERROR, "failed", &m),
            ApiError::Internal(detail) => {
                if let Some(held_back) = LogLimiter::global().admit("internal error") {
                    tracing::error!(error = %detail, held_back, "internal error; answering 500");
                }
                internal()
            }
        }
    }
}

fn internal() -> Response {
    body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the request failed on the server; try again later",
    )
}

/// The database error behind a 500, kept in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ErrorDetail(pub(crate) String);

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn answer(kind: Kind) -> (StatusCode, Option<String>, ErrorBody) {
        let e = QueryError {
            kind,
            detail: "driver text".to_owned(),
        };
        let response = ApiError::from(e).into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_lost_connection_is_503_database_unavailable() {
        let (status, retry, body) = answer(Kind::Unavailable).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body.error, DATABASE_UNAVAILABLE);
        assert!(!body.message.contains("driver text"), "{}", body.message);
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_503_and_says_how_to_retry() {
        let (status, retry, body) = answer(Kind::OutcomeUnknown).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body.error, OUTCOME_UNKNOWN);
        assert!(body.message.contains("may or may not"), "{}", body.message);
        assert!(
            body.message.contains("same Idempotency-Key"),
            "{}",
            body.message
        );
        assert!(!body.message.contains("driver text"), "{}", body.message);
    }
}
