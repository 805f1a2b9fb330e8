//! `Idempotency-Key` on POST routes: the first answer to a key is stored in
//! the same transaction as the write it describes, so a client that retries
//! after an ambiguous error (a timeout, a 500 after the commit, a dropped
//! connection) gets that answer again instead of writing twice.
//!
//! # Implementation Details
//!
//! [`claim`] inserts the key (primary key) before the write. A concurrent
//! request with the same key blocks on that row until the first one's
//! transaction ends: if it committed, the insert fails with a duplicate and
//! the stored answer is returned; if it rolled back, the insert succeeds
//! and this request does the work. [`record`] stores the answer before the
//! commit. Only successes are stored (an error rolls the transaction back,
//! the key with it), so retrying a failed request runs it again.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_mysql::MySqlConn;
use serde_json::Value;

use crate::api::error::{is_duplicate, ApiError};

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";
/// Set on a response replayed from a stored answer.
pub(crate) const REPLAYED: &str = "idempotent-replayed";
/// The longest key accepted.
pub(crate) const MAX_KEY: usize = 100;

/// The request's `Idempotency-Key`, if it sent one.
#[derive(Debug, Clone)]
pub(crate) struct Key(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Key {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Key(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`Idempotency-Key` must be 1 to {MAX_KEY} printable ASCII characters (a UUID is a good choice)"
                ))
            })?;
        Ok(Key(Some(key.to_owned())))
    }
}

/// A stored answer, replayed.
pub(crate) struct Replay {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Replay {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response.headers_mut().insert(
            HeaderName::from_static(REPLAYED),
            HeaderValue::from_static("true"),
        );
        response
    }
}

/// Claim `key` for this request in the open transaction on `conn`.
/// `fingerprint` describes the request (route and validated input); a key
/// reused for another request is refused with 422.
///
/// # Errors
/// 422 for a reused key, or the database's error.
pub(crate) async fn claim(
    conn: &mut MySqlConn,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Replay>, ApiError> {
    let res = conn
        .exec_drop(
            "INSERT INTO demo_idempotency (idem_key, fingerprint) VALUES (?, ?)",
            (key, fingerprint),
        )
        .await;
    match res {
        Ok(()) => Ok(None),
        Err(e) if is_duplicate(&e) => {
            let row: Option<(String, Option<u16>, Option<String>)> = conn
                .exec_first(
                    "SELECT fingerprint, status, body FROM demo_idempotency WHERE idem_key = ?",
                    (key,),
                )
                .await?;
            match row {
                Some((stored, Some(status), Some(body))) if stored == fingerprint => {
                    let status = StatusCode::from_u16(status)
                        .map_err(|e| ApiError::Internal(format!("stored status: {e}")))?;
                    let body = serde_json::from_str(&body)
                        .map_err(|e| ApiError::Internal(format!("stored body: {e}")))?;
                    Ok(Some(Replay { status, body }))
                }
                Some((stored, _, _)) if stored != fingerprint => Err(ApiError::Invalid(
                    "this Idempotency-Key was used for a different request; use a new key for a new request".to_owned(),
                )),
                _ => Err(ApiError::Retry(
                    "a request with this Idempotency-Key is in progress; retry".to_owned(),
                )),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Store the answer to `key` in the open transaction on `conn`.
///
/// # Errors
/// The database's error.
pub(crate) async fn record(
    conn: &mut MySqlConn,
    key: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    conn.exec_drop(
        "UPDATE demo_idempotency SET status = ?, body = ? WHERE idem_key = ?",
        (status.as_u16(), body.to_string(), key),
    )
    .await?;
    Ok(())
}
