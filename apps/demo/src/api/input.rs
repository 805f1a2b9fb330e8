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

/// Characters never accepted in text fields: control characters (NUL,
/// CR/LF, ESC, ...) and the invisible formatting characters that make text
/// display differently from what it is (bidi overrides and isolates,
/// zero-width characters, the BOM).
pub(crate) fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// A trimmed, non-empty string of at most `max` characters, without
/// control or invisible formatting characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if let Some(c) = value.chars().find(|&c| forbidden(c)) {
        return Err(ApiError::Invalid(format!(
            "`{field}` contains the control or formatting character U+{:04X}; send printable text only",
            u32::from(c)
        )));
    }
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

/// An e-mail address: `local@domain`, one `@`, a local part of at most 64
/// printable ASCII characters without spaces, quotes, `()<>[]\\,;:` or dots
/// at its ends or twice in a row, and a domain of dot-separated labels of
/// letters, digits and inner hyphens, with at least two labels.
pub(crate) fn email(value: &str) -> Result<String, ApiError> {
    let v = text("email", value, 254)?;
    if is_email(&v) {
        Ok(v)
    } else {
        Err(ApiError::Invalid(
            "`email` is not an e-mail address (expected name@example.com)".to_owned(),
        ))
    }
}

fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"()<>[]\\,;:@".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
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
        for bad in [
            "",
            "nope",
            "a@b",
            "@b.co",
            "a b@c.de",
            "a@.de",
            "a@@b.co",
            "a@b.co\n",
            "a\u{0}@b.co",
            "a@b\u{202e}.co",
            "a\r\n@b.co",
            "\"a\"@b.co",
            "a..b@c.de",
            "a@b_c.de",
        ] {
            assert!(matches!(email(bad), Err(ApiError::Invalid(_))), "{bad}");
        }
        assert!(matches!(text("name", "   ", 10), Err(ApiError::Invalid(m)) if m.contains("name")));
        assert!(
            matches!(text("name", "abcdefghijk", 10), Err(ApiError::Invalid(m)) if m.contains("10"))
        );
        for bad in [
            "A\u{0}da",
            "Ada\r\nX-Injected: 1",
            "\u{1b}[31mAda",
            "Ada\u{202e}evil",
            "\u{feff}Ada",
        ] {
            assert!(
                matches!(text("name", bad, 100), Err(ApiError::Invalid(m)) if m.contains("U+")),
                "{bad:?}"
            );
        }
        assert_eq!(text("name", " Zoë Ådå ", 100).unwrap(), "Zoë Ådå");
        assert_eq!(limit(None).unwrap(), 20);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
