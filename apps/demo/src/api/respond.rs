//! The way out: every error answer the service makes (its handlers', the
//! framework's, a layer's, `poolwarden-axum`'s) leaves as an [`ErrorBody`]
//! carrying the request's id, which is also echoed in `x-request-id`.
//!
//! The id is fixed here, before any other layer sees the request: the
//! client's `x-request-id` when `poolwarden-axum` accepts it, else a fresh
//! one ([`RequestContext::from_parts`], `poolwarden-axum`'s rule). It is
//! written back into the request's header, so the deadline layer, the
//! checkouts' labels, the logs and the answer all name the same id.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, Limited};
use poolwarden_axum::{RequestContext, REQUEST_ID_HEADER};

use crate::api::error::ErrorBody;
use crate::api::input::BODY_LIMIT;

/// The largest error body read back to add the request id (the service's
/// own are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware (the outermost): fix the request's id, then give every error
/// status a JSON [`ErrorBody`] with it.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let request_id = RequestContext::from_parts(&mut parts)
        .request_id()
        .to_owned();
    let id_header = HeaderValue::from_str(&request_id).ok();
    if let Some(v) = &id_header {
        parts.headers.insert(REQUEST_ID_HEADER, v.clone());
    }
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response = with_error_body(response, &request_id).await;
    }
    if let Some(v) = id_header {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// `response` with an [`ErrorBody`] naming `request_id`: a JSON error body
/// gets the id if it lacks one; any other body (none, or the framework's
/// text) is replaced by one made from the status.
async fn with_error_body(response: Response, request_id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let read = if is_json {
        Limited::new(body, MAX_ERROR_BODY)
            .collect()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<ErrorBody>(&b.to_bytes()).ok())
    } else {
        None
    };
    let mut error = read.unwrap_or_else(|| made_for(parts.status));
    error
        .request_id
        .get_or_insert_with(|| request_id.to_owned());
    let (new_parts, body) = Json(error).into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// The body for an error status whose maker gave no JSON one.
fn made_for(status: StatusCode) -> ErrorBody {
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let message = match status {
        StatusCode::REQUEST_TIMEOUT => "the request body was not sent in time".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "request body too large: the limit is {} KiB",
            BODY_LIMIT / 1024
        ),
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    ErrorBody {
        error: code,
        message,
        request_id: None,
    }
}
