//! Calling the manager: the one helper for "run a bounded manager call,
//! classify its error, act on the class", and the panic guards around every
//! manager method.
//!
//! A manager panic costs at most the connection it was working on: it is
//! caught, counted (`PoolStatus::manager_panics`), logged and observed like
//! an error, and backs off like one.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{CallTimeout, ManagerPanic, SharedError};
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::{Event, InvalidationCause, ManagerCall};
use crate::shared::Shared;
use crate::slots::SlotCell;

/// A future that turns a panic while polling `F` into `Err(message)`.
pub(crate) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(fut: F) -> Self {
        CatchUnwind(Box::pin(fut))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(&*payload))),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}

/// A manager call that failed: the error and how the pool treats it.
pub(crate) struct Failure {
    pub(crate) error: SharedError,
    pub(crate) class: ErrorClass,
}

/// Which connection a call works on (for the reports and the class's
/// pool-wide effect).
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) connection_id: u64,
    pub(crate) generation: u64,
}

impl<M: Manager> Shared<M> {
    /// Count and log a caught manager panic; returns it as an error.
    pub(crate) fn panicked(&self, call: ManagerCall, message: String) -> SharedError {
        self.counters.manager_panics.fetch_add(1, Relaxed);
        // A panic backs off like an error, whatever the connection's close
        // reason says.
        self.note_connection_failure();
        tracing::error!(pool = %self.cfg.name, call = call.as_str(), panic = %message, "the manager panicked; the pool caught it and discards the connection");
        Arc::new(ManagerPanic { call, message })
    }

    /// `classify`, with a panic counted and taken as `Broken`.
    pub(crate) fn classify(&self, error: &M::Error) -> ErrorClass {
        match catch_unwind(AssertUnwindSafe(|| self.manager.classify(error))) {
            Ok(class) => class,
            Err(p) => {
                let _ = self.panicked(ManagerCall::Classify, panic_message(&*p));
                ErrorClass::Broken
            }
        }
    }

    /// The cheap probe (`probe`, or `probe_returned` at return); a panic
    /// counts as a failure of that connection and answers `Corrupt`.
    pub(crate) fn probe(&self, conn: &mut M::Connection, returned: bool, slot: &SlotCell) -> Probe {
        let res = catch_unwind(AssertUnwindSafe(|| {
            if returned {
                self.manager.probe_returned(conn)
            } else {
                self.manager.probe(conn)
            }
        }));
        match res {
            Ok(probe) => probe,
            Err(p) => {
                let error = self.panicked(ManagerCall::Probe, panic_message(&*p));
                let target = Target::of(slot);
                self.failed(
                    ManagerCall::Probe,
                    target,
                    Failure {
                        error,
                        class: ErrorClass::Broken,
                    },
                );
                Probe::Corrupt
            }
        }
    }

    /// `cut_in_flight` (at `close_timeout`); a panic is counted and logged.
    pub(crate) fn cut_in_flight(&self) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.manager.cut_in_flight())) {
            let _ = self.panicked(ManagerCall::CutInFlight, panic_message(&*p));
        }
    }

    /// `on_hand_out`; a panic leaves the connection as it is (the borrower
    /// gets it without a deadline) and is counted and logged.
    pub(crate) fn on_hand_out(
        &self,
        conn: &mut M::Connection,
        deadline: Option<tokio::time::Instant>,
    ) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
            self.manager.on_hand_out(conn, deadline)
        })) {
            let _ = self.panicked(ManagerCall::HandOut, panic_message(&*p));
        }
    }

    /// Run one manager call on a connection, bounded by `bound`, with
    /// panics caught; on failure, report it ([`failed`](Shared::failed)).
    ///
    /// A `Validate` or `Keepalive` ping that outlives its bound is
    /// `Unresponsive` (the socket is open, the server does not answer); any
    /// other call that does is an ordinary failure of that connection.
    pub(crate) async fn bounded<T>(
        &self,
        call: ManagerCall,
        target: Target,
        bound: Duration,
        fut: impl Future<Output = Result<T, M::Error>>,
    ) -> Result<T, Failure> {
        let deadline = crate::clock::deadline_after(tokio::time::Instant::now(), bound);
        self.bounded_until(call, target, deadline, bound, fut).await
    }

    /// [`bounded`](Shared::bounded) with an absolute deadline; `bound` is
    /// what the timeout error reports.
    pub(crate) async fn bounded_until<T>(
        &self,
        call: ManagerCall,
        target: Target,
        deadline: tokio::time::Instant,
        bound: Duration,
        fut: impl Future<Output = Result<T, M::Error>>,
    ) -> Result<T, Failure> {
        let failure = match tokio::time::timeout_at(deadline, CatchUnwind::new(fut)).await {
            Ok(Ok(Ok(v))) => return Ok(v),
            Ok(Ok(Err(e))) => Failure {
                class: self.classify(&e),
                error: Arc::new(e),
            },
            Ok(Err(message)) => Failure {
                error: self.panicked(call, message),
                class: ErrorClass::Broken,
            },
            Err(_) => Failure {
                error: Arc::new(CallTimeout { call, after: bound }),
                class: match call {
                    ManagerCall::Validate | ManagerCall::Keepalive => ErrorClass::Unresponsive,
                    _ => ErrorClass::Keep,
                },
            },
        };
        self.failed(call, target, failure.clone_ref());
        Err(failure)
    }

    /// A call on an open connection failed: log it where a user sees it,
    /// tell the observer, and act on the class for the whole pool. The
    /// caller closes the connection.
    pub(crate) fn failed(&self, call: ManagerCall, target: Target, failure: Failure) {
        let Failure { error, class } = failure;
        tracing::warn!(pool = %self.cfg.name, call = call.as_str(), connection_id = target.connection_id, error = %error, ?class, "manager call failed; connection closed");
        self.emit(Event::CallFailed {
            call,
            connection_id: target.connection_id,
            error: &*error,
            class,
        });
        self.after_failure(class, target.generation, &error);
    }

    /// What an error class means for the whole pool. (The backoff is fed
    /// by the close of the failed connection, see `Shared::count_close`.)
    pub(crate) fn after_failure(&self, class: ErrorClass, generation: u64, error: &SharedError) {
        match class {
            ErrorClass::Disconnect => {
                self.invalidate(Some(generation), InvalidationCause::Disconnect)
            }
            ErrorClass::Unresponsive => self.black_hole(generation, Arc::clone(error)),
            _ => {}
        }
    }
}

impl Target {
    pub(crate) fn of(slot: &SlotCell) -> Target {
        let s = slot.lock();
        Target {
            connection_id: s.meta.id,
            generation: s.meta.generation,
        }
    }
}

impl Failure {
    pub(crate) fn clone_ref(&self) -> Failure {
        Failure {
            error: Arc::clone(&self.error),
            class: self.class,
        }
    }
}
