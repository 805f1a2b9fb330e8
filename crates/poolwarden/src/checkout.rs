//! The way of one checkout: claim an idle connection (or wait for one),
//! decide whether it needs a ping or must retire, hand it out.
//!
//! A claimed connection is not a checkout until [`Shared::hand_out`]: a
//! claim that must be pinged travels as a [`Held`] (counted in
//! `background`, closed if dropped), and only a connection that passed
//! every check is registered in its slot and wrapped in a
//! [`PooledConnection`]. So a failed ping emits no `CheckedIn`, records no
//! hold and counts no checkout.

use std::future::Future;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Tick};
use crate::connect::Queued;
use crate::error::{PoolError, TimeoutError};
use crate::guard::PooledConnection;
use crate::health::{self, AtCheckout};
use crate::inventory::{Live, Take};
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::ManagerCall;
use crate::recycle::Held;
use crate::shared::Shared;
use crate::status::CloseReason;

thread_local! {
    /// This thread's view of the process id, read once per thread: a
    /// thread-local read instead of a `getpid` syscall per checkout (F8).
    static PID: u32 = std::process::id();
}

/// What a claimed idle connection needs before it can be handed out.
pub(crate) enum Claim<M: Manager> {
    /// Nothing: it is registered and ready.
    Ready(PooledConnection<M>),
    /// A ping first (F1, F3).
    Validate(Live<M::Connection>),
    /// Close it and take another.
    Retire(Live<M::Connection>, CloseReason),
}

impl<M: Manager> Shared<M> {
    /// Decide what a connection just taken from the idle set needs, and if
    /// nothing, register the checkout, all in one slot lock.
    pub(crate) fn claim(
        self: &Arc<Self>,
        mut live: Live<M::Connection>,
        location: &'static Location<'static>,
        now: Tick,
    ) -> Claim<M> {
        // The cheap probe catches a socket the server closed while idle and
        // a connection left mid-protocol, before any ping could be fooled by
        // a stale reply (F1, F5). It runs before the slot lock (a manager
        // call never runs under a pool lock); a connection it condemns is
        // retired whatever the rules below say.
        let forked = self.fork_generation.load(Relaxed);
        if forked > 0 && live.slot.lock().meta.generation < forked {
            // Inherited from the parent process: do not even probe it (F8).
            return Claim::Retire(live, CloseReason::Forked);
        }
        let probe = self.probe(&mut live.conn, false, &live.slot);
        let generation = self.generation.load(Relaxed);
        let mut slot = live.slot.lock();
        let decision = health::at_checkout(&slot.meta, now, generation, &self.cfg);
        let retire = match (decision, probe) {
            (AtCheckout::Retire(reason), _) => Some(reason),
            (_, Probe::Clean) => None,
            (_, Probe::Closed) => Some(CloseReason::Closed),
            (_, Probe::Corrupt | Probe::NeedsReset) => Some(CloseReason::Corrupt),
        };
        match (retire, decision) {
            (Some(reason), _) => {
                drop(slot);
                Claim::Retire(live, reason)
            }
            (None, AtCheckout::Use) => {
                // Registered under the same lock: from here on it is a
                // checkout. Known good now: the bypass window restarts (F1).
                slot.meta.last_ok = now;
                let id = slot.register(live.index(), location, now);
                drop(slot);
                Claim::Ready(PooledConnection::new(self, live, id, now))
            }
            (None, _) => {
                drop(slot);
                Claim::Validate(live)
            }
        }
    }

    /// Hand a registered connection to the borrower: the manager learns the
    /// deadline, the observer the checkout.
    fn hand_out(
        &self,
        mut guard: PooledConnection<M>,
        until: Option<tokio::time::Instant>,
    ) -> PooledConnection<M> {
        guard.set_deadline(until);
        self.on_hand_out(guard.conn_mut(), until);
        if self.cfg.leak_backtrace || self.observer.is_some() {
            self.hand_out_slow(&guard);
        }
        guard
    }

    #[cold]
    fn hand_out_slow(&self, guard: &PooledConnection<M>) {
        let backtrace = self
            .cfg
            .leak_backtrace
            .then(|| Arc::new(std::backtrace::Backtrace::force_capture()));
        let mut slot = guard.live().slot.lock();
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

    /// `get()`, `get_timeout()`, `get_until()`: the fast path needs no
    /// timer, no allocation and no round trip; everything else happens in
    /// `checkout_slow`, under the checkout's bound, still without a timer
    /// or an allocation of its own while it waits.
    ///
    /// NOTE: a plain `fn` returning an `async move` block, not an
    /// `async fn`: an `async fn` keeps its arguments twice in its state
    /// (as arguments and as locals), and a waiting checkout's state is
    /// touched on every wake-up; the same for `checkout_slow`.
    // NOTE above: a plain `fn` on purpose.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn checkout(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        timeout: Duration,
        until: Option<tokio::time::Instant>,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + '_ {
        async move {
            // Take part in tokio's cooperative budget like any semaphore
            // acquire, so a task looping on an uncontended pool still lets
            // its neighbours run. Before taking a connection: a forced
            // yield here holds nothing.
            tokio::task::coop::consume_budget().await;
            let to_ping = match self.fast_path(location, until) {
                Ok(done) => return done,
                Err(to_ping) => to_ping,
            };
            self.checkout_slow(location, to_ping, timeout, until).await
        }
    }

    /// The fast path: `Ok(result)` when it decided the checkout, else
    /// `Err` for the slow path, with the connection it took if that one
    /// needs a ping (one that must retire is closed here).
    #[allow(clippy::type_complexity)]
    fn fast_path(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        until: Option<tokio::time::Instant>,
    ) -> Result<Result<PooledConnection<M>, PoolError>, Option<Live<M::Connection>>> {
        if !self.maintenance_running.load(Relaxed) {
            // Never started, or its runtime shut down (defect 4).
            self.start_maintenance();
        }
        if let Some(until) = until {
            if until <= tokio::time::Instant::now() {
                return Ok(Err(self.timeout_error(Duration::ZERO)));
            }
        }
        if PID.with(|p| *p) != self.pid.load(Relaxed) {
            return Err(None);
        }
        match self.inv.try_take() {
            Take::Got(live, idle_left) => {
                if idle_left < self.cfg.min_idle {
                    // Refill min_idle now, not at the next maintenance
                    // pass (defect 7).
                    let _ = self.plan_connects(None);
                }
                match self.claim(live, location, clock::now()) {
                    Claim::Ready(guard) => {
                        #[cfg(feature = "metrics")]
                        self.metrics.wait.record(0.0);
                        Ok(Ok(self.hand_out(guard, until)))
                    }
                    Claim::Retire(live, reason) => {
                        self.close_conn(live, reason, false);
                        Err(None)
                    }
                    Claim::Validate(live) => Err(Some(live)),
                }
            }
            Take::Closed => Ok(Err(PoolError::Closed)),
            Take::Empty => Err(None),
        }
    }

    /// `try_get()`.
    pub(crate) fn try_checkout(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<PooledConnection<M>, PoolError> {
        match self.inv.try_take() {
            Take::Got(live, _) => match self.claim(live, location, clock::now()) {
                Claim::Ready(guard) => Ok(self.hand_out(guard, None)),
                Claim::Retire(live, reason) => {
                    self.close_conn(live, reason, false);
                    Err(PoolError::Busy)
                }
                Claim::Validate(live) => {
                    // Give it back untouched: it still needs its ping.
                    self.put_idle(live, false);
                    Err(PoolError::Busy)
                }
            },
            Take::Closed => Err(PoolError::Closed),
            Take::Empty => Err(PoolError::Busy),
        }
    }

    /// Everything but the fast path, bounded by the earlier of `timeout`
    /// and `until`. No timer of its own while it waits (the pool's sweeper
    /// wakes it at its deadline) and no allocation.
    // Not an `async fn`: see the NOTE on `checkout`.
    #[allow(clippy::manual_async_fn)]
    fn checkout_slow(
        self: &Arc<Self>,
        location: &'static Location<'static>,
        mut to_ping: Option<Live<M::Connection>>,
        timeout: Duration,
        until: Option<tokio::time::Instant>,
    ) -> impl Future<Output = Result<PooledConnection<M>, PoolError>> + Send + '_ {
        async move {
            let start = tokio::time::Instant::now();
            let mut deadline = clock::deadline_after(start, timeout);
            if let Some(until) = until {
                deadline = deadline.min(until);
            }
            if PID.with(|p| *p) != self.pid.load(Relaxed) {
                // This thread saw another process id: read the real one (a
                // syscall, so only here and in maintenance, F8).
                self.check_fork();
            }
            // Only a connection that needs a ping is carried across the
            // loop (`to_ping`), so the state kept while waiting stays small.
            let mut queued = Queued::new(self);
            // `start` was read just now: the first wait needs no clock read of
            // its own to know its deadline has not passed.
            let mut fresh = true;
            let result = loop {
                if let Some(live) = to_ping.take() {
                    fresh = false; // the ping takes time
                    match self.validated_checkout(live, location, deadline).await {
                        Ok(Some(guard)) => break Ok(self.hand_out(guard, until)),
                        Ok(None) => {} // closed; wait for another
                        Err(e) => break Err(e),
                    }
                }
                let passed = if std::mem::take(&mut fresh) {
                    start >= deadline
                } else {
                    tokio::time::Instant::now() >= deadline
                };
                if passed {
                    queued.leave();
                    break Err(self.timeout_error(start.elapsed()));
                }
                let live = match self.wait_for_idle(&mut queued, deadline).await {
                    Ok(Some(live)) => live,
                    // The deadline passed: the check above says so.
                    Ok(None) => continue,
                    Err(e) => break Err(e),
                };
                match self.claim(live, location, clock::now()) {
                    Claim::Ready(guard) => break Ok(self.hand_out(guard, until)),
                    Claim::Retire(live, reason) => self.close_conn(live, reason, false),
                    Claim::Validate(live) => to_ping = Some(live),
                }
            };
            #[cfg(feature = "metrics")]
            if result.is_ok() {
                self.metrics.wait.record(start.elapsed().as_secs_f64());
            }
            result
        }
    }

    /// Ping a claimed connection and, if it answered, register it as a
    /// checkout. `Ok(None)`: it failed and was closed (take another).
    ///
    /// Boxed: a ping is rare (at most once per `validation_bypass` per
    /// connection) and costs a round trip anyway, while inline it would make
    /// every checkout future as large as the manager's ping future, and a
    /// waiting checkout's future is touched on every wake-up.
    async fn validated_checkout(
        self: &Arc<Self>,
        live: Live<M::Connection>,
        location: &'static Location<'static>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<PooledConnection<M>>, PoolError> {
        let held = Held::new(self, live, CloseReason::ValidationFailed);
        let Some(live) = Box::pin(self.validate(held, deadline)).await? else {
            return Ok(None);
        };
        // The pool may have closed during the ping (defect 5).
        if self.inv.is_closed() {
            self.close_conn(live, CloseReason::PoolClosed, false);
            return Err(PoolError::Closed);
        }
        // Just pinged: registered as a checkout, its bypass window
        // restarted (F1).
        let now = clock::now();
        let id = {
            let mut slot = live.slot.lock();
            slot.meta.last_ok = now;
            slot.register(live.index(), location, now)
        };
        Ok(Some(PooledConnection::new(self, live, id, now)))
    }

    /// Ping a claimed connection, bounded by `validation_timeout` (and, from
    /// outside, by the checkout's deadline). `Ok(Some(connection))` when it answered;
    /// `Ok(None)` when it failed and was closed (the checkout takes
    /// another); `Err` when the checkout must fail now because the server
    /// stopped answering.
    ///
    /// If this future is dropped mid-ping, the `Held` closes the
    /// half-pinged connection: it is never reused.
    async fn validate(
        self: &Arc<Self>,
        mut held: Held<M>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Live<M::Connection>>, PoolError> {
        self.counters.validations.fetch_add(1, Relaxed);
        let target = held.target();
        let bound = self.cfg.validation_timeout;
        let own = clock::deadline_after(tokio::time::Instant::now(), bound);
        if deadline < own {
            // The checkout's deadline comes first: when it passes, the
            // checkout times out and `held` closes the connection, without
            // calling the server unresponsive (it had less than
            // validation_timeout to answer).
            let ping = self.bounded(
                ManagerCall::Validate,
                target,
                bound,
                self.manager.validate(held.conn_mut()),
            );
            return match tokio::time::timeout_at(deadline, ping).await {
                Ok(res) => self.validated(held, res),
                // Closed by `held`; the wait that follows sees the deadline.
                Err(_) => Ok(None),
            };
        }
        let res = self
            .bounded_until(
                ManagerCall::Validate,
                target,
                own,
                bound,
                self.manager.validate(held.conn_mut()),
            )
            .await;
        self.validated(held, res)
    }

    /// The outcome of a checkout's ping.
    fn validated(
        &self,
        held: Held<M>,
        res: Result<(), crate::call::Failure>,
    ) -> Result<Option<Live<M::Connection>>, PoolError> {
        match res {
            Ok(()) => {
                self.note_proven();
                Ok(Some(held.into_live()))
            }
            Err(failure) => {
                held.close(CloseReason::ValidationFailed);
                if failure.class == ErrorClass::Unresponsive {
                    return Err(PoolError::Unresponsive {
                        source: failure.error,
                    });
                }
                Ok(None)
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
        let mut holders = crate::slots::checkouts(&self.inv.all_slots(), clock::now());
        holders.truncate(3);
        let last_connect_error = self.inv.lock().connect.last_error.clone();
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
