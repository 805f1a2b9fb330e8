//! The way of one checkout: claim an idle connection (or wait for one),
//! decide whether it needs a ping or must retire, hand it out.

use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::TryAcquireError;

use crate::clock::{self, Tick};
use crate::error::{PoolError, TimeoutError};
use crate::guard::PooledConnection;
use crate::health::{self, AtCheckout};
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::InvalidationCause;
use crate::pool::Shared;
use crate::status::CloseReason;

thread_local! {
    /// This thread's view of the process id, read once per thread: a
    /// thread-local read instead of a `getpid` syscall per checkout (F8).
    static PID: u32 = std::process::id();
}

impl<M: Manager> Shared<M> {
    /// Take the idle connection a permit entitles us to, and register the
    /// checkout. The caller has forgotten the permit.
    fn claim(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        now: Tick,
    ) -> Option<(PooledConnection<M>, AtCheckout)> {
        let (mut idle, checkout_id) = {
            let mut st = self.state.lock();
            // A permit stands for exactly one idle connection (slots.rs),
            // except when `close()` drained the idle set under a permit
            // already granted: then there is nothing to claim.
            let idle = st.pop_idle(self.cfg.idle_order)?;
            let id = st.register(&idle.meta, location, now);
            (idle, id)
        };
        let mut decision =
            health::at_checkout(&idle.meta, now, self.generation.load(Relaxed), &self.cfg);
        if idle.meta.generation < self.fork_generation.load(Relaxed) {
            // Inherited from the parent process: do not even probe it (F8).
            decision = AtCheckout::Retire(CloseReason::Forked);
        } else if decision != AtCheckout::Validate {
            // The cheap probe catches a socket the server closed while idle.
            match self.manager.probe(&mut idle.conn) {
                Probe::Clean => {}
                Probe::Closed => decision = AtCheckout::Retire(CloseReason::Closed),
                Probe::Corrupt | Probe::NeedsReset => {
                    decision = AtCheckout::Retire(CloseReason::Corrupt)
                }
            }
        }
        Some((PooledConnection::new(self, idle, checkout_id, now), decision))
    }

    /// Hand a checked connection out.
    fn hand_out(&self, mut guard: PooledConnection<M>, now: Tick) -> PooledConnection<M> {
        let backtrace = self
            .cfg
            .leak_backtrace
            .then(|| Arc::new(std::backtrace::Backtrace::force_capture()));
        if let Some(idle) = guard.inner.as_mut() {
            idle.meta.last_ok = now;
            let mut st = self.state.lock();
            st.checkouts += 1;
            if backtrace.is_some() {
                st.records[idle.meta.slot as usize].backtrace = backtrace;
            }
        }
        guard.emit_checked_out();
        guard
    }

    /// `get()`: the fast path needs no timer, no allocation and no round
    /// trip; everything else happens under the checkout timeout.
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        timeout: Duration,
    ) -> Result<PooledConnection<M>, PoolError> {
        let mut pending = None;
        if PID.with(|p| *p) == self.pid.load(Relaxed) {
            match self.sem.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    let now = clock::now();
                    pending = self.claim(location, now);
                    if let Some((guard, AtCheckout::Use)) = pending {
                        #[cfg(feature = "metrics")]
                        self.metrics.wait.record(0.0);
                        return Ok(self.hand_out(guard, now));
                    }
                }
                Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
                Err(TryAcquireError::NoPermits) => {}
            }
        }
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        match tokio::time::timeout_at(deadline, self.checkout_slow(location, pending, deadline))
            .await
        {
            Ok(result) => {
                #[cfg(feature = "metrics")]
                self.metrics.wait.record(start.elapsed().as_secs_f64());
                result
            }
            Err(_) => Err(self.timeout_error(start.elapsed())),
        }
    }

    /// `try_get()`.
    pub(crate) fn try_checkout(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<PooledConnection<M>, PoolError> {
        match self.sem.try_acquire() {
            Ok(permit) => {
                permit.forget();
                let now = clock::now();
                let Some((guard, decision)) = self.claim(location, now) else {
                    return Err(PoolError::Closed);
                };
                match decision {
                    AtCheckout::Use => Ok(self.hand_out(guard, now)),
                    AtCheckout::Retire(reason) => {
                        guard.discard(reason);
                        Err(PoolError::Busy)
                    }
                    AtCheckout::Validate => {
                        // Give it back untouched: it still needs its ping.
                        guard.release_unused();
                        Err(PoolError::Busy)
                    }
                }
            }
            Err(TryAcquireError::Closed) => Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => Err(PoolError::Busy),
        }
    }

    async fn checkout_slow(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        mut pending: Option<(PooledConnection<M>, AtCheckout)>,
        deadline: tokio::time::Instant,
    ) -> Result<PooledConnection<M>, PoolError> {
        self.check_fork();
        self.start_maintenance();
        loop {
            if let Some((mut guard, decision)) = pending.take() {
                match decision {
                    AtCheckout::Use => return Ok(self.hand_out(guard, clock::now())),
                    AtCheckout::Retire(reason) => guard.discard(reason),
                    AtCheckout::Validate => {
                        if self.validate(&mut guard, deadline).await {
                            return Ok(self.hand_out(guard, clock::now()));
                        }
                        // `validate` marked it; dropping it closes it.
                    }
                }
            }
            let permit = self.wait_for_idle(deadline).await?;
            permit.forget();
            pending = self.claim(location, clock::now());
            if pending.is_none() && self.state.lock().closed {
                return Err(PoolError::Closed);
            }
        }
    }

    /// Ping a connection about to be handed out, bounded by the validation
    /// timeout and the checkout deadline. On failure the guard is marked
    /// for closing and the pool is invalidated if the server went away.
    ///
    /// If this future is dropped mid-ping, the guard is already marked, so
    /// the half-pinged connection is closed, never reused.
    pub(crate) async fn validate(
        &self,
        guard: &mut PooledConnection<M>,
        deadline: tokio::time::Instant,
    ) -> bool {
        self.counters.validations.fetch_add(1, Relaxed);
        guard.mark(CloseReason::ValidationFailed);
        let bound = (tokio::time::Instant::now() + self.cfg.validation_timeout).min(deadline);
        let generation = guard.generation();
        let Some(conn) = guard.conn_mut() else {
            return false;
        };
        match tokio::time::timeout_at(bound, self.manager.validate(conn)).await {
            Ok(Ok(())) => {
                guard.unmark();
                true
            }
            Ok(Err(e)) => {
                let class = self.manager.classify(&e);
                tracing::debug!(pool = %self.cfg.name, error = %e, ?class, "validation failed; replacing the connection");
                if class == ErrorClass::Disconnect {
                    self.invalidate(generation, InvalidationCause::Disconnect);
                }
                false
            }
            Err(_) => {
                tracing::debug!(pool = %self.cfg.name, "validation timed out; replacing the connection");
                false
            }
        }
    }

    fn timeout_error(&self, waited: Duration) -> PoolError {
        self.counters.timeouts.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.timeouts.increment(1);
        let mut status = self.status();
        status.waiting += 1; // this checkout was waiting too
        #[cfg(feature = "metrics")]
        self.metrics.gauges(&status);
        let (holders, last_connect_error) = {
            let st = self.state.lock();
            let mut holders = st.checkouts(clock::now());
            holders.truncate(3);
            (holders, st.connect.last_error.clone())
        };
        let err = TimeoutError {
            waited,
            status,
            holders,
            last_connect_error,
            pool: self.cfg.name.clone(),
        };
        tracing::warn!(pool = %self.cfg.name, "{err}");
        PoolError::Timeout(Box::new(err))
    }
}
