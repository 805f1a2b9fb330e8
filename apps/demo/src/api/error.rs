//! API errors: a status and a JSON body `{"error": code, "message": text}`.
//! Client mistakes are 4xx with a message that says what to fix; server
//! trouble is 5xx without internals (they go to the log).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::DbRejection;
use serde_json::json;

/// An error a handler returns.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: malformed request.
    BadRequest(String),
    /// 404.
    NotFound(&'static str),
    /// 409: conflicts with existing data.
    Conflict(String),
    /// 413.
    TooLarge(String),
    /// 415.
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    Invalid(String),
    /// 503: no connection (the pool's rejection, logged by it).
    Unavailable(DbRejection),
    /// 500: a database error; details are logged, not returned.
    Database(mysql_async::Error),
}

impl From<mysql_async::Error> for ApiError {
    fn from(e: mysql_async::Error) -> Self {
        ApiError::Database(e)
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

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => body(StatusCode::BAD_REQUEST, "bad_request", &m),
            ApiError::NotFound(what) => body(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("{what} not found"),
            ),
            ApiError::Conflict(m) => body(StatusCode::CONFLICT, "conflict", &m),
            ApiError::TooLarge(m) => body(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &m),
            ApiError::UnsupportedMediaType(m) => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                &m,
            ),
            ApiError::Invalid(m) => body(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &m),
            ApiError::Unavailable(rejection) => rejection.into_response(),
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error");
                let mut response = body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the request failed on the server; try again later",
                );
                // In-process only (never sent): lets the incident replay
                // tell which errors reached requests.
                response.extensions_mut().insert(ErrorDetail(e.to_string()));
                response
            }
        }
    }
}

/// The database error behind a 500, kept in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ErrorDetail(pub(crate) String);

/// Whether a database error is a duplicate key (1062).
pub(crate) fn is_duplicate(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1062)
}
