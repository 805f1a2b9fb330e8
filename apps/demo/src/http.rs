//! The HTTP server: hyper's HTTP/1 with a header-read timeout (which also
//! closes idle keep-alive connections), a cap on concurrent connections, and
//! graceful shutdown; request bodies are read in full, within the body
//! timeout and the size limit, before any handler runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use poolwarden_axum::LogLimiter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::api::error::ApiError;
use crate::api::input::BODY_LIMIT;
use crate::settings::HttpSettings;

/// How long open connections get to finish their requests at shutdown, at
/// most.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` resolves, then let the
/// connections finish (at most [`DRAIN_TIMEOUT`]).
///
/// # Errors
/// None today: accept errors (out of file descriptors) are logged,
/// rate-limited, and accepting goes on.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    http: &HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let drain_by = async {
        shutdown.await;
        Instant::now() + DRAIN_TIMEOUT
    };
    serve_draining_by(listener, router, http, drain_by).await
}

/// [`serve`], where `shutdown` resolves to the instant by which the open
/// connections must be done (never later than [`DRAIN_TIMEOUT`] after it
/// resolves); those still open then are closed.
///
/// # Errors
/// As [`serve`].
pub(crate) async fn serve_draining_by(
    listener: TcpListener,
    router: Router,
    http: &HttpSettings,
    shutdown: impl Future<Output = Instant>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    let drain_by = loop {
        // At the cap, stop accepting: new connections wait in the backlog.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
            at = &mut shutdown => break at,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if let Some(held_back) = LogLimiter::global().admit("accept failed") {
                        tracing::warn!(error = %e, held_back, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            at = &mut shutdown => break at,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out headers).
            let _ = conn.await;
            drop(permit);
        });
    };
    drop(listener);
    let drain_by = drain_by.min(Instant::now() + DRAIN_TIMEOUT);
    if tokio::time::timeout_at(drain_by, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections were still open at the end of the shutdown's drain; closing them"
        );
    }
    Ok(())
}

/// Middleware: read the whole request body (bounded by [`BODY_LIMIT`] and
/// the body timeout layer) before the handler runs, so every request's body
/// is consumed and the connection can be reused, whether the handler looks
/// at the body or not (a `POST /reports` with `{}` used to leave its body
/// unread and the connection closed under the client).
pub(crate) async fn read_body(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let timed_out = chain_has::<tower_http::timeout::TimeoutError>(&*e);
            let too_large = chain_has::<http_body_util::LengthLimitError>(&*e);
            return if timed_out {
                ApiError::TimedOut("the request body was not sent in time".to_owned())
            } else if too_large {
                ApiError::TooLarge(format!(
                    "request body too large: the limit is {} KiB",
                    BODY_LIMIT / 1024
                ))
            } else {
                ApiError::BadRequest("the request body could not be read".to_owned())
            }
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn chain_has<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<T>() {
            return true;
        }
        source = e.source();
    }
    false
}
