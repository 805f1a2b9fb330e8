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
//!
//! Keys are kept for [`IdempotencySettings::retention`] (24 h by default)
//! and then deleted by [`expire`], at most `cleanup_batch` per pass, every
//! `cleanup_interval`: a retry within the retention gets the first answer;
//! one after it runs as a new request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden::Pool;
use serde_json::Value;

use crate::api::error::ApiError;
use crate::settings::IdempotencySettings;
use crate::store::Store;

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
/// 422 for a reused key, 503 while another request with it is in
/// progress, or the database's error.
pub(crate) async fn claim<B: Store>(
    conn: &mut B::Connection,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Replay>, ApiError> {
    if B::claim_key(conn, key, fingerprint).await? {
        return Ok(None);
    }
    match B::stored_answer(conn, key).await? {
        Some(stored) if stored.fingerprint != fingerprint => Err(ApiError::Invalid(
            "this Idempotency-Key was used for a different request; use a new key for a new request".to_owned(),
        )),
        Some(stored) => match (stored.status, stored.body) {
            (Some(status), Some(body)) => {
                let status = StatusCode::from_u16(status)
                    .map_err(|e| ApiError::Internal(format!("stored status: {e}")))?;
                let body = serde_json::from_str(&body)
                    .map_err(|e| ApiError::Internal(format!("stored body: {e}")))?;
                Ok(Some(Replay { status, body }))
            }
            _ => Err(ApiError::Retry(
                "a request with this Idempotency-Key is in progress; retry".to_owned(),
            )),
        },
        // Expired between the two statements: ask for a retry.
        None => Err(ApiError::Retry(
            "a request with this Idempotency-Key is in progress; retry".to_owned(),
        )),
    }
}

/// Store the answer to `key` in the open transaction on `conn`.
///
/// # Errors
/// The database's error.
pub(crate) async fn record<B: Store>(
    conn: &mut B::Connection,
    key: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    B::record_answer(conn, key, status.as_u16(), &body.to_string()).await?;
    Ok(())
}

/// One expiry pass: delete at most `settings.cleanup_batch` keys older
/// than `settings.retention`, the oldest first, on a connection of its own
/// (labelled, returned at once). How many went.
///
/// # Errors
/// No connection, or the database's error.
pub(crate) async fn expire<B: Store>(
    pool: &Pool<B>,
    settings: &IdempotencySettings,
) -> Result<u64, ApiError> {
    let mut conn = pool.get().await?;
    conn.label("idempotency key expiry");
    Ok(B::expire_keys(&mut conn, settings.retention, settings.cleanup_batch).await?)
}

/// Run [`expire`] every `settings.cleanup_interval` until `stop` resolves.
/// A pass that deletes a full batch is followed by the next one at once
/// (still one batch at a time), so a backlog drains without one long
/// statement.
pub(crate) async fn expire_until<B: Store>(
    pool: Pool<B>,
    settings: IdempotencySettings,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + settings.cleanup_interval;
        match expire(&pool, &settings).await {
            Ok(n) if n >= u64::from(settings.cleanup_batch) => next = tokio::time::Instant::now(),
            Ok(n) if n > 0 => tracing::info!(deleted = n, "expired idempotency keys"),
            Ok(_) => {}
            Err(e) => {
                if let Some(held_back) =
                    poolwarden_axum::LogLimiter::global().admit("idempotency key expiry failed")
                {
                    tracing::warn!(error = ?e, held_back, "idempotency key expiry failed; retrying at the next interval");
                }
            }
        }
    }
}
