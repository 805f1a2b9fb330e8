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
    /// Take the idle connection a permit entitles us to, decide what it
    /// needs, and register the checkout, all under one lock. The caller has
    /// forgotten the permit.
    fn claim(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        now: Tick,
    ) -> Option<(PooledConnection<M>, AtCheckout)> {
        // A permit stands for exactly one idle connection (slots.rs),
        // except when `close()` drained the idle set under a permit already
        // granted: then there is nothing to claim.
        let mut idle = self.state.lock().pop_idle(self.cfg.idle_order)?;
        let generation = self.generation.load(Relaxed);
        let (checkout_id, mut decision, forked) = {
            let mut slot = self.slots.get(idle.slot);
            let decision = health::at_checkout(&slot.meta, now, generation, &self.cfg);
            let forked = slot.meta.generation < self.fork_generation.load(Relaxed);
            if decision == AtCheckout::Use {
                // Known good now: the bypass window restarts (F1).
                slot.meta.last_ok = now;
            }
            let id = slot.register(idle.slot, &self.slots, location, now);
            (id, decision, forked)
        };
        if forked {
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
        Some((
            PooledConnection::new(self, idle, checkout_id, now),
            decision,
        ))
    }

    /// Hand a checked connection out. `validated`: it just passed a ping.
    fn hand_out(&self, guard: PooledConnection<M>, validated: bool) -> PooledConnection<M> {
        if validated || self.cfg.leak_backtrace || self.observer.is_some() {
            self.hand_out_slow(&guard, validated);
        }
        guard
    }

    #[cold]
    fn hand_out_slow(&self, guard: &PooledConnection<M>, validated: bool) {
        let backtrace = self
            .cfg
            .leak_backtrace
            .then(|| Arc::new(std::backtrace::Backtrace::force_capture()));
        let now = clock::now();
        let mut slot = self.slots.get(guard.slot());
        if validated {
            // The bypass window restarts at the ping.
            slot.meta.last_ok = now;
        }
        if backtrace.is_some() {
            slot.record.backtrace = backtrace;
        }
        let (connection_id, location) = (slot.meta.id, slot.record.location);
        drop(slot);
        self.emit(crate::observe::Event::CheckedOut {
            checkout_id: guard.checkout_id(),
            connection_id,
            location,
        });
    }

    /// `get()`: the fast path needs no timer, no allocation and no round
    /// trip; everything else happens under the checkout timeout, in a boxed
    /// future so that `get()`'s own future stays small.
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        timeout: Duration,
    ) -> Result<PooledConnection<M>, PoolError> {
        // Take part in tokio's cooperative budget like any semaphore
        // acquire, so a task looping on an uncontended pool still lets its
        // neighbours run. Before taking a connection: a forced yield here
        // holds nothing.
        tokio::task::coop::consume_budget().await;
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
                        return Ok(self.hand_out(guard, false));
                    }
                }
                Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
                Err(TryAcquireError::NoPermits) => {}
            }
        }
        Box::pin(self.checkout_timed(location, pending, timeout)).await
    }

    async fn checkout_timed(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        pending: Option<(PooledConnection<M>, AtCheckout)>,
        timeout: Duration,
    ) -> Result<PooledConnection<M>, PoolError> {
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
                    AtCheckout::Use => Ok(self.hand_out(guard, false)),
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
        if PID.with(|p| *p) != self.pid.load(Relaxed) {
            // This thread saw another process id: read the real one (a
            // syscall, so only here and in maintenance, F8).
            self.check_fork();
        }
        self.start_maintenance();
        loop {
            if let Some((mut guard, decision)) = pending.take() {
                match decision {
                    AtCheckout::Use => return Ok(self.hand_out(guard, false)),
                    AtCheckout::Retire(reason) => guard.discard(reason),
                    AtCheckout::Validate => {
                        if self.validate(&mut guard, deadline).await {
                            return Ok(self.hand_out(guard, true));
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
        let generation = Some(guard.generation());
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
        let mut holders = self.slots.checkouts(clock::now());
        holders.truncate(3);
        let last_connect_error = self.state.lock().connect.last_error.clone();
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
