//! Opening connections: at most `max_connecting` at once, only when
//! checkouts (or `min_idle`) need them, with jittered exponential backoff
//! after failures that resets on the first success; waiting checkouts fail
//! fast while the server is down (F2, F9, F11).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::task::Poll;

use crate::call::{panic_message, CatchUnwind};
use crate::clock::{self, Tick};
use crate::config::WhenUnavailable;
use crate::error::{PoolError, SharedError};
use crate::health::{self, Meta};
use crate::inventory::{Live, State, Ticket, Waited};
use crate::manager::{ErrorClass, Manager};
use crate::observe::{Event, ManagerCall};
use crate::shared::Shared;

/// A checkout's place in the waiter queue (`waiters.rs`). Leaving it, on
/// every path (cancellation included), hands on a connection that was
/// granted to the checkout but not yet taken.
pub(crate) struct Queued<'a, M: Manager> {
    shared: &'a Shared<M>,
    ticket: Ticket,
}

impl<'a, M: Manager> Queued<'a, M> {
    pub(crate) fn new(shared: &'a Shared<M>) -> Self {
        Queued {
            shared,
            ticket: Ticket::default(),
        }
    }

    /// Give up the place (idempotent).
    pub(crate) fn leave(&mut self) {
        if let Some(live) = self.shared.inv.leave(&mut self.ticket) {
            self.shared.put_idle(live, false);
        }
    }
}

impl<M: Manager> Drop for Queued<'_, M> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What `plan_locked` decided.
struct Plan<M: Manager> {
    /// Reserved attempts to start.
    start: Vec<Reservation<M>>,
    /// When to plan again (a backoff holds connects back).
    retry_at: Option<Tick>,
    /// Fail the waiting checkout with this.
    fail: Option<PoolError>,
    /// The server stopped answering before this checkout began waiting:
    /// it waits for a round trip of its own for at most
    /// `validation_timeout`, then fails with this.
    black_hole: Option<SharedError>,
}

impl<M: Manager> Default for Plan<M> {
    fn default() -> Self {
        Plan {
            start: Vec::new(),
            retry_at: None,
            fail: None,
            black_hole: None,
        }
    }
}

/// Where a waiting checkout began: the connect attempts and Unresponsive
/// events seen so far. It fails fast only with what comes after.
#[derive(Clone, Copy)]
pub(crate) struct Since {
    attempts: u64,
    unresponsive: u64,
}

/// A reserved connect: `connecting` counts it until it becomes an open
/// connection ([`Reservation::opened`], which consumes it) or is dropped
/// (the connect failed, timed out, panicked, or the task was cancelled). No
/// path loses the reservation, and no connection is counted open without
/// one.
pub(crate) struct Reservation<M: Manager> {
    shared: Arc<Shared<M>>,
    /// The attempt's number (see `ConnectState::attempts`).
    attempt: u64,
    armed: bool,
}

impl<M: Manager> Reservation<M> {
    /// Take a reservation from the state, under the caller's lock.
    fn reserve(shared: &Arc<Shared<M>>, st: &mut State<M::Connection>) -> Option<Self> {
        let attempt = st.reserve_connect()?;
        Some(Reservation {
            shared: Arc::clone(shared),
            attempt,
            armed: true,
        })
    }
}

impl<M: Manager> Drop for Reservation<M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.inv.abandon_connect();
            self.shared.wake_all();
        }
    }
}

/// The delay before the next connect after `failures` failures in a row:
/// `min * 2^(failures-1)`, capped at `max`, then a random point in its
/// upper half ("equal jitter").
pub(crate) fn backoff(min: Duration, max: Duration, failures: u32, random: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    base / 2 + health::scale(base / 2, random.clamp(0.0, 1.0))
}

impl<M: Manager> Shared<M> {
    /// Wait for a connection (idle, or handed over by a return), starting
    /// connects as needed. The checkout keeps its place in the FIFO queue
    /// across wake-ups (F7) through `queued`.
    ///
    /// `Ok(None)` when `deadline` passed: the waiter has no timer of its
    /// own; the pool's sweeper wakes it (`deadlines.rs`).
    // Not an `async fn`: see the NOTE on `checkout`.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn wait_for_idle<'a, 'b: 'a>(
        self: &'a Arc<Self>,
        queued: &'a mut Queued<'b, M>,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Option<Live<M::Connection>>, PoolError>> + Send + use<'a, 'b, M>
    {
        async move {
            // The caller checked that `deadline` has not passed.
            self.ensure_sweeper();
            // Fail fast only with the error of an attempt that starts after now.
            let since = Since {
                attempts: self.inv.summary.attempts.load(Relaxed),
                unresponsive: self.inv.summary.unresponsive_events.load(Relaxed),
            };
            // While the server is black-holed, how long this checkout waits for a
            // round trip of its own before it fails with Unresponsive.
            let mut probe_until: Option<tokio::time::Instant> = None;
            let mut replan = false;
            let mut wake_at = deadline;
            loop {
                let mut first = true;
                let waited = std::future::poll_fn(|cx| loop {
                    let polled = self.inv.poll_wait(
                        &mut queued.ticket,
                        wake_at,
                        |at| self.deadlines.publish(at),
                        cx,
                    );
                    if polled.is_ready() || !std::mem::take(&mut first) {
                        return polled.map(Ok);
                    }
                    // Queued (and registered for wake-ups) now, so an event
                    // from here on wakes it. Plan connects unless the pool is
                    // settled (full and healthy): the steady state costs no
                    // lock beyond the queue's.
                    if !std::mem::take(&mut replan) && self.inv.summary.settled.load(Relaxed) {
                        return Poll::Pending;
                    }
                    match self.plan_wait(since, deadline, &mut probe_until) {
                        // Poll again: it registers the new `wake_at` and sees
                        // what happened meanwhile.
                        Ok(at) => wake_at = at,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                })
                .await?;
                match waited {
                    Waited::Got(live) => return Ok(Some(live)),
                    Waited::Closed => return Err(PoolError::Closed),
                    Waited::Woken => {
                        if tokio::time::Instant::now() >= deadline {
                            return Ok(None);
                        }
                        self.ensure_sweeper();
                        replan = true;
                    }
                }
            }
        }
    }

    /// A waiting checkout's planning: start the connects it needs; returns
    /// when the sweeper must wake it (its deadline, the end of a backoff,
    /// the end of its black-hole probe), or the error to fail with now.
    fn plan_wait(
        self: &Arc<Self>,
        since: Since,
        deadline: tokio::time::Instant,
        probe_until: &mut Option<tokio::time::Instant>,
    ) -> Result<tokio::time::Instant, PoolError> {
        let mut plan = self.plan_locked(&mut self.inv.lock(), Some(since));
        let black_hole = plan.black_hole.take();
        let mut wake_at = deadline;
        if let Some(retry_at) = self.carry_out(plan)? {
            // A backoff holds connects back: the sweeper wakes the waiter
            // when it ends (no timer of its own).
            wake_at = wake_at.min(retry_at.to_tokio());
        }
        if let Some(source) = black_hole {
            let now = tokio::time::Instant::now();
            let until = *probe_until.get_or_insert_with(|| {
                crate::clock::deadline_after(now, self.cfg.validation_timeout).min(deadline)
            });
            if now >= until {
                return Err(PoolError::Unresponsive { source });
            }
            wake_at = wake_at.min(until);
        }
        Ok(wake_at)
    }

    /// Start the connects that waiting checkouts and `min_idle` need, within
    /// `max_open`, `max_connecting` and the backoff. Returns when to look
    /// again if a backoff holds connects back.
    ///
    /// # Errors
    /// For a checkout waiting since `waiter` (`Some`): fail fast when the
    /// pool has no connection and connecting fails (F2, F11).
    pub(crate) fn plan_connects(
        self: &Arc<Self>,
        waiter: Option<Since>,
    ) -> Result<Option<Tick>, PoolError> {
        let plan = self.plan_locked(&mut self.inv.lock(), waiter);
        self.carry_out(plan)
    }

    /// The decision part of [`plan_connects`](Shared::plan_connects), under
    /// the caller's lock: reserves the connects to start.
    fn plan_locked(
        self: &Arc<Self>,
        st: &mut State<M::Connection>,
        waiter: Option<Since>,
    ) -> Plan<M> {
        let now = clock::now();
        let mut plan = Plan::default();
        if st.closed() {
            plan.fail = Some(PoolError::Closed);
            return plan;
        }
        let demand = self.demand(st);
        let backoff_over = st.connect.next_attempt.is_none_or(|t| now >= t);
        if backoff_over {
            while st.connecting() < demand.min(self.connects_allowed(st)) {
                let Some(reservation) = Reservation::reserve(self, st) else {
                    break;
                };
                plan.start.push(reservation);
            }
            // One round of attempts per backoff period.
            if !plan.start.is_empty() && st.connect.failures > 0 {
                st.connect.next_attempt = Some(now.plus(self.next_backoff(st)));
            }
            self.inv.publish(st);
        }
        plan.retry_at = st.connect.next_attempt.filter(|t| *t > now && demand > 0);
        plan.fail = waiter.and_then(|since| self.fail_fast(st, since));
        if waiter.is_some() && plan.fail.is_none() {
            plan.black_hole = st.connect.black_hole.clone();
        }
        plan
    }

    /// How many connects may be in flight now: `max_connecting`, but one
    /// while the pool holds no connection. The first proves the server
    /// takes connections before the rest follow (each success plans the
    /// next, in `connect_one`). Started together, first connects can refuse
    /// each other: PostgreSQL counts a starting session against a role's
    /// `CONNECTION LIMIT` before checking it, so two starting at once with
    /// one slot free can both be refused, and a pool with no connection
    /// fails its waiting checkouts fast (F9).
    pub(crate) fn connects_allowed(&self, st: &State<M::Connection>) -> u32 {
        if st.open() == 0 {
            1
        } else {
            self.cfg.max_connecting
        }
    }

    /// The effect part: start the reserved connects (outside the lock).
    fn carry_out(self: &Arc<Self>, plan: Plan<M>) -> Result<Option<Tick>, PoolError> {
        for reservation in plan.start {
            self.start_connect(reservation);
        }
        match plan.fail {
            Some(e) => Err(e),
            None => Ok(plan.retry_at),
        }
    }

    /// Connects wanted: one per waiting checkout beyond those in flight,
    /// plus the `min_idle` shortfall.
    fn demand(&self, st: &State<M::Connection>) -> u32 {
        let idle = st.idle();
        let unserved = st.waiting().saturating_sub(idle);
        let min_idle_shortfall = self.cfg.min_idle.saturating_sub(idle);
        unserved.max(min_idle_shortfall)
    }

    fn next_backoff(&self, st: &State<M::Connection>) -> Duration {
        if st.connect.fatal {
            return self.cfg.fatal_retry_interval;
        }
        backoff(
            self.cfg.connect_backoff_min,
            self.cfg.connect_backoff_max,
            st.connect.failures,
            fastrand::f64(),
        )
    }

    /// The error a checkout waiting since `since` fails with now, if any:
    /// the pool holds no connection and connecting fails (F2, F11).
    ///
    /// Bad settings (`Fatal`) fail at once. Otherwise a checkout fails only
    /// with the error of an attempt that *started after it began waiting*:
    /// it never fails with a stale error when the server may be back, so
    /// once the server answers, no checkout fails (F2). While the server is
    /// down that costs each checkout at most one backoff period (50 ms by
    /// default) instead of its whole timeout, and attempts stay bounded by
    /// `max_connecting` per period.
    ///
    /// When the server stops answering (black hole, see
    /// [`ErrorClass::Unresponsive`]), every checkout waiting at that moment
    /// fails at once, whatever the policy: waiting on a frozen server is
    /// what it prevents. A checkout that begins later waits for a round
    /// trip of its own (a connect) for at most `validation_timeout`, then
    /// fails with Unresponsive: it never fails with a stale cause once the
    /// server is back, and still fails well before its timeout while the
    /// server stays frozen; a further Unresponsive event while it waits
    /// fails it at once.
    fn fail_fast(&self, st: &State<M::Connection>, since: Since) -> Option<PoolError> {
        if let Some(source) = &st.connect.black_hole {
            // Only an event seen after this checkout began waiting: a
            // checkout that starts after the server came back (before any
            // round trip cleared the black hole) waits for its connect.
            if st.connect.unresponsive_events > since.unresponsive {
                return Some(PoolError::Unresponsive {
                    source: Arc::clone(source),
                });
            }
        }
        if st.open() > 0 || st.connect.failures == 0 {
            return None;
        }
        let source: SharedError = st.connect.last_error.clone()?;
        if st.connect.fatal {
            return Some(PoolError::Fatal { source });
        }
        let fresh = st.connecting() == 0 && st.connect.last_error_attempt > since.attempts;
        (fresh && self.cfg.when_unavailable == WhenUnavailable::FailFast)
            .then_some(PoolError::Unavailable { source })
    }

    /// Reserve room for one connect now, if the limits allow.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Reservation<M>> {
        let mut st = self.inv.lock();
        let r = Reservation::reserve(self, &mut st);
        self.inv.publish(&st);
        r
    }

    /// Spawn one connect.
    fn start_connect(self: &Arc<Self>, reservation: Reservation<M>) {
        let shared = Arc::clone(self);
        let spawned = self.spawn(async move {
            shared.connect_one(reservation).await;
        });
        if !spawned {
            tracing::error!(pool = %self.cfg.name, "no tokio runtime to open connections on");
        }
    }

    /// Open one connection; returns the error when the attempt failed. A
    /// panic in `connect` or `facts` is caught and fails the attempt like
    /// an error (with backoff); the connection, if any, is closed.
    pub(crate) async fn connect_one(
        self: Arc<Self>,
        mut reservation: Reservation<M>,
    ) -> Option<PoolError> {
        let started = clock::now();
        let result = tokio::time::timeout(
            self.cfg.connect_timeout,
            CatchUnwind::new(self.manager.connect()),
        )
        .await;
        let now = clock::now();
        let failure = match result {
            Ok(Ok(Ok(conn))) => {
                let facts = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.manager.facts(&conn)
                }));
                match facts {
                    Ok(facts) => {
                        reservation.armed = false;
                        self.opened(conn, facts, started, now);
                        None
                    }
                    Err(p) => {
                        drop(conn);
                        let e = self.panicked(ManagerCall::Connect, panic_message(&*p));
                        Some((e, ErrorClass::Keep))
                    }
                }
            }
            Ok(Ok(Err(e))) => {
                let class = self.classify(&e);
                Some((Arc::new(e) as SharedError, class))
            }
            Ok(Err(message)) => Some((
                self.panicked(ManagerCall::Connect, message),
                ErrorClass::Keep,
            )),
            Err(_) => Some((
                Arc::new(ConnectTimeout(self.cfg.connect_timeout)) as SharedError,
                ErrorClass::Keep,
            )),
        };
        let error = failure.map(|(error, class)| {
            self.connect_failed(Arc::clone(&error), class, reservation.attempt, now);
            if class == ErrorClass::Fatal {
                PoolError::Fatal { source: error }
            } else {
                PoolError::Unavailable { source: error }
            }
        });
        drop(reservation);
        // More waiters may need more connections (or the backoff changed).
        let _ = self.plan_connects(None);
        error
    }

    /// A connect succeeded: the server answers (no black hole, no connect
    /// error), and the new connection goes to the oldest waiting checkout,
    /// or to the idle set. The backoff is not reset here: a connection proves
    /// the server only by its first round trip (see `note_proven`).
    fn opened(&self, conn: M::Connection, facts: crate::ConnectionFacts, started: Tick, now: Tick) {
        let server_limit = facts.server_idle_timeout.map(health::server_limit);
        let generation = self.generation.load(Relaxed);
        let meta = Meta {
            id: 0, // assigned by the inventory
            created: now,
            retire_at: health::retire_at(&self.cfg, now, fastrand::f64()),
            generation,
            last_ok: now,
            last_io: now,
            idle_since: now,
            server_idle_timeout: facts.server_idle_timeout,
            server_limit,
            keepalive: health::keepalive_period(&self.cfg, server_limit, fastrand::f64()),
        };
        {
            let mut st = self.inv.lock();
            st.connect.fatal = false;
            st.connect.last_error = None;
            st.connect.next_attempt = None;
            st.connect.black_hole = None;
        }
        let (live, id) = self.inv.opened(conn, meta);
        self.counters.created.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        {
            self.metrics.created.increment(1);
            self.metrics
                .connect
                .record(now.since(started).as_secs_f64());
        }
        tracing::debug!(pool = %self.cfg.name, connection_id = id, took_ms = now.since(started).as_millis() as u64, "connection opened");
        self.emit(Event::Connected {
            connection_id: id,
            took: now.since(started),
        });
        self.put_idle(live, false);
        self.wake_all();
    }

    fn connect_failed(&self, error: SharedError, class: ErrorClass, attempt: u64, now: Tick) {
        let consecutive = {
            let mut st = self.inv.lock();
            st.connect.failures += 1;
            st.connect.last_error_attempt = attempt;
            st.connect.fatal = class == ErrorClass::Fatal;
            st.connect.last_error = Some(Arc::clone(&error));
            let delay = self.next_backoff(&st);
            st.connect.next_attempt = Some(now.plus(delay));
            self.inv.publish(&st);
            st.connect.failures
        };
        self.counters.connect_failures.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.connect_errors.increment(1);
        if class == ErrorClass::Fatal {
            tracing::error!(pool = %self.cfg.name, error = %error, "connecting failed and retrying will not help; fix the connection settings");
        } else {
            tracing::warn!(pool = %self.cfg.name, error = %error, consecutive, "connecting failed; retrying with backoff");
        }
        self.emit(Event::ConnectFailed {
            error: &*error,
            class,
            consecutive,
        });
        self.wake_all();
    }

    /// A connection failed (a failed or panicking ping, reset or probe, a
    /// socket found closed): the next connect waits for the backoff, exactly
    /// as after a failed connect (defect 1: a server that accepts connects
    /// but fails every ping must not be stormed with connects).
    pub(crate) fn note_connection_failure(&self) {
        let now = clock::now();
        let mut st = self.inv.lock();
        st.connect.failures = st.connect.failures.saturating_add(1);
        let at = now.plus(self.next_backoff(&st));
        st.connect.next_attempt = Some(st.connect.next_attempt.map_or(at, |t| t.max(at)));
        self.inv.publish(&st);
    }

    /// A round trip on a connection succeeded: the server works. Ends the
    /// backoff and the black hole.
    pub(crate) fn note_proven(&self) {
        if !self.inv.summary.failing.load(Relaxed) {
            return; // nothing to clear: no lock on a healthy pool's returns
        }
        let cleared = {
            let mut st = self.inv.lock();
            let cleared = st.connect.black_hole.take().is_some();
            if st.connect.failures > 0 {
                st.connect.failures = 0;
                st.connect.next_attempt = None;
            }
            self.inv.publish(&st);
            cleared
        };
        if cleared {
            tracing::info!(pool = %self.cfg.name, "the server answers again");
        }
    }

    /// The server stopped answering (`ErrorClass::Unresponsive`, seen on a
    /// connection of `generation`): retire every connection handed out
    /// before (once per generation), and fail waiting checkouts fast until
    /// a round trip succeeds.
    pub(crate) fn black_hole(&self, generation: u64, error: SharedError) {
        self.invalidate(
            Some(generation),
            crate::observe::InvalidationCause::Unresponsive,
        );
        {
            let mut st = self.inv.lock();
            st.connect.black_hole = Some(error);
            st.connect.unresponsive_events += 1;
            self.inv.publish(&st);
        }
        self.wake_all();
    }
}

/// A connect that took longer than `connect_timeout` (F10).
#[derive(Debug, thiserror::Error)]
#[error("connecting took longer than connect_timeout ({0:?}); is the server reachable?")]
pub struct ConnectTimeout(pub Duration);
