//! # The inventory: the one owner of the pool's accounting
//!
//! Every connection the pool is responsible for is, at each moment, in
//! exactly one of these places, and only the methods of this module move it:
//!
//! | where | counted in | moved in by | moved out by |
//! |---|---|---|---|
//! | being opened | `connecting` | [`State::reserve_connect`] | [`Inventory::opened`], [`Inventory::abandon_connect`] |
//! | idle | `idle` | [`Inventory::put_idle`] | [`Inventory::try_take`], [`Inventory::poll_wait`], [`Inventory::take_idle_where`], [`Inventory::close`] |
//! | granted to a waiting checkout, not yet taken | `open` (in use) | [`Inventory::put_idle`] | [`Inventory::poll_wait`], [`Inventory::leave`] |
//! | with a borrower | `open` (in use) | (a [`Live`] handed out) | (its return) |
//! | worked on off any borrower's path (a checkout's ping, a reset, a keepalive) | `background` | [`Inventory::enter_background`] | [`Inventory::leave_background`] |
//! | gone | - | [`Inventory::forget`] (frees its slot) | - |
//!
//! A connection out of the idle set travels as a [`Live`], which only this
//! module can create ([`Inventory::opened`]): holding one is the proof that
//! the connection is counted in `open` and owns a slot.
//!
//! # Invariants
//! - `open + connecting <= max_open` (checked in [`State::reserve_connect`]).
//! - Every open connection owns exactly one slot; a slot is on the free
//!   list exactly when no connection owns it ([`Inventory::opened`],
//!   [`Inventory::forget`]).
//! - A connection is idle only while no checkout waits: [`Inventory::put_idle`]
//!   gives a connection to the oldest waiter before it would push it idle,
//!   and a checkout queues only after it found the idle set empty, both
//!   under the state lock (`waiters.rs`). So a waiting checkout never waits
//!   beside an idle connection, and none can barge ahead of it (F7).
//! - `idle + background <= open`; `in_use = open - idle - background`
//!   counts exactly the connections with a borrower.
//!
//! Lock order: the state lock before a slot lock, never the reverse.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use std::task::{Context, Poll};

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Tick;
use crate::config::IdleOrder;
use crate::error::SharedError;
use crate::health::Meta;
use crate::slots::SlotCell;
use crate::status::CloseReason;
use crate::waiters::{Polled, Waiters};

/// Proof of origin: only this module can make a [`Live`].
#[derive(Debug)]
struct Counted(());

/// An open connection the pool owns, out of the idle set: claimed by a
/// checkout, with a borrower, or in background work. Holding one means it is
/// counted in `open` and owns `slot`; it leaves only through
/// [`Inventory::put_idle`] or [`Inventory::forget`].
pub(crate) struct Live<C> {
    /// Boxed once, when it opens: a `Live` moves at every transition
    /// (idle set, waiter's entry, claim, guard, return), and a manager's
    /// connection can be hundreds of bytes (measured: moving it by value
    /// was the pool's largest cost per query on `SELECT 1`, see
    /// BENCHMARKS.md); a box moves as one pointer.
    pub(crate) conn: Box<C>,
    pub(crate) slot: Arc<SlotCell>,
    _counted: Counted,
}

impl<C> Live<C> {
    /// The slot's index (for checkout ids and the free list).
    pub(crate) fn index(&self) -> u32 {
        self.slot.index
    }
}

/// Why connects are not succeeding, and when to try again.
#[derive(Default)]
pub(crate) struct ConnectState {
    /// Failures in a row (failed connects, and connections that failed
    /// before proving themselves: a failed ping, a panic). Reset only by
    /// proof that the server works: a successful ping or a clean return.
    pub(crate) failures: u32,
    pub(crate) last_error: Option<SharedError>,
    /// Connect attempts started so far; each attempt's number is the value
    /// after its start.
    pub(crate) attempts: u64,
    /// The number of the attempt that produced `last_error`.
    pub(crate) last_error_attempt: u64,
    /// The last connect error was fatal (F11).
    pub(crate) fatal: bool,
    /// No new connect before this (backoff).
    pub(crate) next_attempt: Option<Tick>,
    /// The server stopped answering (`ErrorClass::Unresponsive`): checkouts
    /// waiting when it is seen fail fast with this, until a round trip
    /// succeeds.
    pub(crate) black_hole: Option<SharedError>,
    /// Unresponsive events seen so far; a checkout fails fast only with an
    /// event seen after it began waiting (never with a stale one).
    pub(crate) unresponsive_events: u64,
}

/// What the state publishes for lock-free reads by checkouts.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Mirror of `ConnectState::attempts`.
    pub(crate) attempts: AtomicU64,
    /// Mirror of `ConnectState::unresponsive_events`.
    pub(crate) unresponsive_events: AtomicU64,
    /// A hint: every connection the pool may open is open or opening, and
    /// connecting is not failing, so a waiting checkout has no connect to
    /// plan. A stale value only delays planning until the next wake-up
    /// (every change that matters wakes waiters), never loses it.
    pub(crate) settled: AtomicBool,
    /// Connects are backing off or the server does not answer: a proof of
    /// health (`note_proven`) has something to clear.
    pub(crate) failing: AtomicBool,
}

/// Everything guarded by the pool's lock.
pub(crate) struct State<C> {
    idle: VecDeque<Live<C>>,
    /// Checkouts waiting for a connection (`waiters.rs`).
    waiters: Waiters<C>,
    open: u32,
    connecting: u32,
    background: u32,
    /// Every slot allocated so far (index = position); grows as
    /// connections open, never beyond the most open at once.
    slots: Vec<Arc<SlotCell>>,
    free: Vec<u32>,
    next_connection_id: u64,
    pub(crate) connect: ConnectState,
    closed: bool,
    max_open: u32,
}

impl<C> State<C> {
    pub(crate) fn open(&self) -> u32 {
        self.open
    }
    pub(crate) fn idle(&self) -> u32 {
        self.idle.len() as u32
    }
    pub(crate) fn connecting(&self) -> u32 {
        self.connecting
    }
    pub(crate) fn background(&self) -> u32 {
        self.background
    }
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }
    /// Checkouts waiting for a connection.
    pub(crate) fn waiting(&self) -> u32 {
        u32::try_from(self.waiters.len()).unwrap_or(u32::MAX)
    }
    /// Connections with a borrower (or granted to a waiting checkout that
    /// has not taken it yet).
    pub(crate) fn in_use(&self) -> u32 {
        self.open - self.idle() - self.background
    }

    /// Reserve room for one connect, if the limits allow it. Returns the
    /// attempt's number; the caller wraps it in a `Reservation` at once.
    pub(crate) fn reserve_connect(&mut self) -> Option<u64> {
        // Invariant: open + connecting <= max_open.
        if self.closed || self.open.saturating_add(self.connecting) >= self.max_open {
            return None;
        }
        self.connecting += 1;
        self.connect.attempts += 1;
        Some(self.connect.attempts)
    }

    /// Every slot, for scans (leaks, `checkouts()`); the caller locks them
    /// one at a time after releasing the state lock.
    pub(crate) fn all_slots(&self) -> Vec<Arc<SlotCell>> {
        self.slots.clone()
    }
}

/// Keeps what it holds on cache lines of its own (128 bytes: two lines,
/// for CPUs that fetch lines in pairs), so that data written by every
/// checkout does not slow down the reads of its neighbours.
#[repr(align(128))]
struct Padded<T>(T);

/// The locked state (connections, waiters) and the slots of one pool.
pub(crate) struct Inventory<C> {
    /// NOTE: padded: the lock word and the state are written by every
    /// checkout and return; `summary` beside it is read by them.
    state: Padded<Mutex<State<C>>>,
    pub(crate) summary: Summary,
    max_size: u32,
    order: IdleOrder,
}

/// The outcome of [`Inventory::try_take`].
pub(crate) enum Take<C> {
    /// A connection, and how many stay idle.
    Got(Live<C>, u32),
    Empty,
    Closed,
}

/// A checkout's place in the waiter queue: `None` until it first waits,
/// and again once it was granted a connection. Keep it across the waits of
/// one checkout, and give it back with [`Inventory::leave`] when the
/// checkout stops waiting (the caller's guard does, on every path).
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    key: Option<u32>,
    /// It was granted a connection before: if it waits again (the
    /// connection failed its checks), it goes to the front.
    served: bool,
}

/// What a waiting checkout's poll found ([`Inventory::poll_wait`]).
pub(crate) enum Waited<C> {
    Got(Live<C>),
    /// A pool event: look again (deadline, connects, fail fast).
    Woken,
    Closed,
}

impl<C> Inventory<C> {
    pub(crate) fn new(max_size: u32, max_open: u32, order: IdleOrder) -> Self {
        Inventory {
            state: Padded(Mutex::new(State {
                idle: VecDeque::new(),
                waiters: Waiters::new(),
                open: 0,
                connecting: 0,
                background: 0,
                slots: Vec::new(),
                free: Vec::new(),
                next_connection_id: 1,
                connect: ConnectState::default(),
                closed: false,
                max_open,
            })),
            summary: Summary::default(),
            max_size,
            order,
        }
    }

    /// Lock the state (planning, status, decisions that read the counts).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.0.lock()
    }

    /// Refresh the published summary after a change of counts or of the
    /// connect state. Call with the lock held.
    pub(crate) fn publish(&self, st: &State<C>) {
        let failing = st.connect.failures > 0 || st.connect.black_hole.is_some();
        let settled =
            !st.closed && st.open.saturating_add(st.connecting) >= st.max_open && !failing;
        self.summary.settled.store(settled, Relaxed);
        self.summary.failing.store(failing, Relaxed);
        self.summary.attempts.store(st.connect.attempts, Relaxed);
        self.summary
            .unresponsive_events
            .store(st.connect.unresponsive_events, Relaxed);
    }

    /// connecting -> open: a connect finished. Allocates (or reuses) a slot,
    /// fills it with `meta` and the new connection id. Returns the id.
    pub(crate) fn opened(&self, conn: C, meta: Meta) -> (Live<C>, u64) {
        let (cell, id) = {
            let mut st = self.state.0.lock();
            st.connecting -= 1;
            st.open += 1;
            let id = st.next_connection_id;
            st.next_connection_id += 1;
            // Invariant: a slot is free exactly when no connection owns it.
            let cell = match st.free.pop() {
                Some(i) => Arc::clone(&st.slots[i as usize]),
                None => {
                    let cell = Arc::new(SlotCell::new(st.slots.len() as u32));
                    st.slots.push(Arc::clone(&cell));
                    cell
                }
            };
            self.publish(&st);
            (cell, id)
        };
        cell.lock().meta = Meta { id, ..meta };
        let live = Live {
            conn: Box::new(conn),
            slot: cell,
            _counted: Counted(()),
        };
        (live, id)
    }

    /// connecting -> nothing: a connect failed or was abandoned.
    pub(crate) fn abandon_connect(&self) {
        let mut st = self.state.0.lock();
        st.connecting -= 1;
        self.publish(&st);
    }

    /// owned -> the oldest waiting checkout, or idle: the only place that
    /// pushes an idle connection. Refused (the connection is handed back
    /// with the reason to close it) when the pool is closed, or nobody
    /// waits and `max_size` connections are already idle (overflow, F7).
    pub(crate) fn put_idle(&self, live: Live<C>) -> Result<(), (Live<C>, CloseReason)> {
        let mut st = self.state.0.lock();
        if st.closed {
            return Err((live, CloseReason::PoolClosed));
        }
        // Invariant: a connection is idle only while no checkout waits.
        let live = match st.waiters.grant(live) {
            Ok(waker) => {
                drop(st);
                // NOTE: woken *after* the unlock, so the waiter does not
                // wake into a held lock.
                if let Some(w) = waker {
                    w.wake();
                }
                return Ok(());
            }
            Err(live) => live,
        };
        if st.idle() >= self.max_size {
            return Err((live, CloseReason::Overflow));
        }
        st.idle.push_back(live);
        Ok(())
    }

    fn pop_idle(&self, st: &mut State<C>) -> Option<Live<C>> {
        match self.order {
            IdleOrder::Lifo => st.idle.pop_back(),
            IdleOrder::Fifo => st.idle.pop_front(),
        }
    }

    /// idle -> owned, without waiting.
    pub(crate) fn try_take(&self) -> Take<C> {
        let mut st = self.state.0.lock();
        if st.closed {
            return Take::Closed;
        }
        match self.pop_idle(&mut st) {
            Some(live) => Take::Got(live, st.idle()),
            None => Take::Empty,
        }
    }

    /// idle -> owned, waiting in FIFO order: one poll of a waiting
    /// checkout. The first poll takes an idle connection if one is there,
    /// else queues the checkout; later polls take the connection the
    /// return path granted it. `wake_at` is when the pool's sweeper must
    /// wake it if nothing else does; `publish` is called (under the lock,
    /// so a sweep cannot miss it) when that changed.
    pub(crate) fn poll_wait(
        &self,
        ticket: &mut Ticket,
        wake_at: tokio::time::Instant,
        publish: impl FnOnce(tokio::time::Instant),
        cx: &mut Context<'_>,
    ) -> Poll<Waited<C>> {
        let mut st = self.state.0.lock();
        let key = match ticket.key {
            Some(key) => key,
            None => {
                if st.closed {
                    return Poll::Ready(Waited::Closed);
                }
                if let Some(live) = self.pop_idle(&mut st) {
                    return Poll::Ready(Waited::Got(live));
                }
                let key = st.waiters.join(ticket.served);
                ticket.key = Some(key);
                key
            }
        };
        let (polled, changed) = st.waiters.poll(key, cx.waker(), wake_at);
        match polled {
            Polled::Granted(live) => {
                ticket.key = None;
                ticket.served = true;
                Poll::Ready(Waited::Got(live))
            }
            // Closing woke every waiter; one polled for another reason
            // sees it too.
            Polled::Woken | Polled::Pending if st.closed => Poll::Ready(Waited::Closed),
            Polled::Woken => Poll::Ready(Waited::Woken),
            Polled::Pending => {
                if changed {
                    publish(wake_at);
                }
                Poll::Pending
            }
        }
    }

    /// A checkout stops waiting: its place in the queue is given up, and a
    /// connection granted to it but not taken is returned for the caller
    /// to hand on ([`put_idle`](Inventory::put_idle)).
    pub(crate) fn leave(&self, ticket: &mut Ticket) -> Option<Live<C>> {
        let key = ticket.key.take()?;
        self.state.0.lock().waiters.leave(key)
    }

    /// Wake every waiting checkout to look again (a connect finished, a
    /// connection closed, the server stopped answering, the pool closed).
    pub(crate) fn wake_waiters(&self) {
        let wakers = {
            let mut st = self.state.0.lock();
            if st.waiters.len() == 0 {
                return;
            }
            st.waiters.wake_all()
        };
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// The sweeper: wake the waiting checkouts whose `wake_at` passed;
    /// returns the next `wake_at` of the others.
    pub(crate) fn sweep(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let (wakers, next) = self.state.0.lock().waiters.sweep(now);
        wakers.into_iter().for_each(std::task::Waker::wake);
        next
    }

    /// idle -> background: the first idle connection `pick` chooses,
    /// counted in `background` from the same lock. For maintenance.
    pub(crate) fn take_idle_where<T>(
        &self,
        mut pick: impl FnMut(&State<C>, &Live<C>) -> Option<T>,
    ) -> Option<(Live<C>, T)> {
        let mut st = self.state.0.lock();
        let (index, what) = st
            .idle
            .iter()
            .enumerate()
            .find_map(|(i, live)| pick(&st, live).map(|w| (i, w)))?;
        let live = st.idle.remove(index)?;
        st.background += 1;
        Some((live, what))
    }

    /// owned -> background.
    pub(crate) fn enter_background(&self) {
        self.state.0.lock().background += 1;
    }

    /// background -> owned.
    pub(crate) fn leave_background(&self) {
        self.state.0.lock().background -= 1;
    }

    /// owned -> gone: the connection itself is already closed or forgotten
    /// (so at most `max_open` exist at any moment); free its slot.
    pub(crate) fn forget(&self, slot: &SlotCell, background: bool) {
        let mut st = self.state.0.lock();
        if background {
            st.background -= 1;
        }
        st.open -= 1;
        st.free.push(slot.index);
        self.publish(&st);
    }

    /// Close: no more takes, no more pushes; waiting checkouts are woken
    /// (they see `closed`); the idle connections are handed to the caller
    /// to close. Returns them (empty on a second call).
    pub(crate) fn close(&self) -> Vec<Live<C>> {
        let mut st = self.state.0.lock();
        st.closed = true;
        self.publish(&st);
        let idle = st.idle.drain(..).collect();
        let wakers = st.waiters.wake_all();
        drop(st);
        wakers.into_iter().for_each(std::task::Waker::wake);
        idle
    }

    /// Whether `close()` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.0.lock().closed
    }

    /// Every slot (see [`State::all_slots`]).
    pub(crate) fn all_slots(&self) -> Vec<Arc<SlotCell>> {
        self.state.0.lock().all_slots()
    }

    /// Check the invariants (tests).
    #[cfg(test)]
    pub(crate) fn debug_check(&self) {
        let st = self.state.0.lock();
        assert!(
            st.open.saturating_add(st.connecting) <= st.max_open,
            "over max_open"
        );
        assert_eq!(
            st.slots.len() - st.free.len(),
            st.open as usize,
            "slot accounting"
        );
        assert!(st.idle() + st.background <= st.open);
        assert!(
            st.idle.is_empty() || st.waiters.len() == 0,
            "a connection is idle only while no checkout waits"
        );
        st.waiters.debug_check();
    }
}
