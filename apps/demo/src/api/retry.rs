//! Lost races are retried on the server: a write whose transaction was
//! rolled back by a deadlock, a lock wait timeout or a serialization
//! failure (the response carries [`LostRace`]) is run again, whole (its
//! transaction, its `Idempotency-Key` claim, everything), up to
//! [`ATTEMPTS`] times, after a short jittered pause, and only while the
//! request's deadline leaves room for the pause. Only then does the client
//! get the 503 with `Retry-After`.
//!
//! Put it outside `TxLayer` (add it after), so each attempt is its own
//! transaction, and inside the layer that reads the body in full
//! (`http::read_body`), so the body can be sent again.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use poolwarden_axum::{LogLimiter, RequestDeadline};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::api::error::{ApiError, LostRace};
use crate::api::input::BODY_LIMIT;

/// How many times a request is run at most (the first run included).
pub(crate) const ATTEMPTS: u32 = 3;

/// The pause before retry `n` (1-based): 10 ms doubled each time, plus up
/// to as much again at random, so the losers of one race do not meet again
/// in the next.
pub(crate) fn pause(n: u32) -> Duration {
    let base = Duration::from_millis(10) * 2u32.saturating_pow(n.saturating_sub(1));
    base + base.mul_f64(fastrand::f64())
}

/// The layer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RetryLostRaces;

impl<S> Layer<S> for RetryLostRaces {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> RetryService<S> {
        RetryService { inner }
    }
}

/// The service made by [`RetryLostRaces`].
#[derive(Debug, Clone)]
pub(crate) struct RetryService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request> for RetryService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each attempt waits for readiness of its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // Already read in full by `http::read_body`: this does not wait.
            let Ok(bytes) = Limited::new(body, BODY_LIMIT).collect().await else {
                return Ok(
                    ApiError::BadRequest("the request body could not be read".to_owned())
                        .into_response(),
                );
            };
            let bytes = bytes.to_bytes();
            let deadline = parts.extensions.get::<RequestDeadline>().map(|d| d.at());
            let mut attempt = 1;
            loop {
                let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
                let response = inner.clone().oneshot(req).await?;
                if response.extensions().get::<LostRace>().is_none() || attempt >= ATTEMPTS {
                    return Ok(response);
                }
                let wait = pause(attempt);
                // NOTE: never past the request's deadline: the client gets
                // the 503 while it still listens.
                if deadline.is_some_and(|at| Instant::now() + wait >= at) {
                    return Ok(response);
                }
                if let Some(held_back) = LogLimiter::global().admit("lost race retried") {
                    tracing::info!(
                        attempt,
                        route = %parts.uri.path(),
                        held_back,
                        "a transaction lost a race with concurrent writes (deadlock, lock wait or serialization); running the request again"
                    );
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_bounded() {
        for n in 1..=ATTEMPTS {
            let p = pause(n);
            let base = Duration::from_millis(10) * 2u32.pow(n - 1);
            assert!(p >= base && p <= base * 2, "{n}: {p:?}");
        }
    }
}
