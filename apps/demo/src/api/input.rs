//! Input handling: JSON bodies and query strings whose rejections become
//! 4xx errors with a clear message (never a 500), and field validation.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;

/// The largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// `Json<T>` with API errors.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "request body too large: the limit is {} KiB",
            BODY_LIMIT / 1024
        )),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
            "send a JSON body with `Content-Type: application/json`".to_owned(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Invalid(text),
        _ => ApiError::BadRequest(text),
    }
}

/// `Query<T>` with API errors.
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

/// A trimmed, non-empty string of at most `max` characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::Invalid(format!("`{field}` must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::Invalid(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(v.to_owned())
}

/// A plausible e-mail address.
pub(crate) fn email(value: &str) -> Result<String, ApiError> {
    let v = text("email", value, 255)?;
    let ok = v.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !v.contains(char::is_whitespace);
    if ok {
        Ok(v)
    } else {
        Err(ApiError::Invalid(format!(
            "`email` is not an e-mail address: {v:?}"
        )))
    }
}

/// Page size: 1..=100, default 20.
pub(crate) fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    match value {
        None => Ok(20),
        Some(n @ 1..=100) => Ok(n),
        Some(n) => Err(ApiError::Invalid(format!(
            "`limit` must be between 1 and 100, got {n}"
        ))),
    }
}

/// A numeric id from the path (`/accounts/{id}`), with API errors.
pub(crate) struct Id(pub(crate) u64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<u64>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(_) => Err(ApiError::BadRequest(
                "the id in the path must be a positive integer".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_say_what_to_fix() {
        assert!(email("a@b.co").is_ok());
        for bad in ["", "nope", "a@b", "@b.co", "a b@c.de", "a@.de"] {
            assert!(matches!(email(bad), Err(ApiError::Invalid(_))), "{bad}");
        }
        assert!(matches!(text("name", "   ", 10), Err(ApiError::Invalid(m)) if m.contains("name")));
        assert!(
            matches!(text("name", "abcdefghijk", 10), Err(ApiError::Invalid(m)) if m.contains("10"))
        );
        assert_eq!(limit(None).unwrap(), 20);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
