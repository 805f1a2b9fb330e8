//! The pool's accounting. Two kinds of state, two kinds of lock:
//!
//! - [`State`], under the pool's one mutex: the idle connections and the
//!   counts (open, connecting, waiting, resetting), the free slot list and
//!   the connect state. A checkout holds this lock only to pop, a return
//!   only to push: as short as a plain `Mutex<Vec<_>>`.
//! - [`Slots`]: one small mutex per connection slot, holding what the pool
//!   knows about that connection ([`Meta`]) and its current checkout
//!   ([`Record`]). Only the connection's current owner (a guard, a reset, a
//!   keepalive) writes it, so its lock is uncontended except against the
//!   leak scanner and `checkouts()`.
//!
//! Lock order: `State` before a slot, never the reverse.
//!
//! # Invariants (kept by the methods below, checked by `debug_check`)
//! - `open + connecting <= max_open`: a connect is only started through
//!   [`State::reserve_connect`], which checks it.
//! - Every open connection owns exactly one slot; `free` holds the others.
//!   A slot is freed exactly once, by [`State::forget`], after the
//!   connection itself is gone.
//! - The semaphore's permits equal the idle connections not yet claimed: a
//!   connection is pushed with [`State::push_idle`] and then exactly one
//!   permit is added; a permit is taken (and forgotten) before
//!   [`State::pop_idle`]. So a permit holder finds a connection (unless
//!   `close()` drained them, which the claim handles).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::Location;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Tick;
use crate::config::IdleOrder;
use crate::error::SharedError;
use crate::health::Meta;
use crate::status::CheckoutInfo;

/// A connection out of a borrower's hands, and the slot that holds what
/// the pool knows about it. Small on purpose: it moves on every checkout.
pub(crate) struct Idle<C> {
    pub(crate) conn: C,
    pub(crate) slot: u32,
}

/// One open connection's slot: its facts and its current checkout.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) meta: Meta,
    pub(crate) record: Record,
    /// Checkouts registered in this slot so far (ids are derived from it).
    seq: u64,
    /// Checkouts handed out from this slot so far.
    pub(crate) handed_out: u64,
}

/// The per-connection slots.
pub(crate) struct Slots {
    cells: Box<[Mutex<Slot>]>,
}

impl Slots {
    pub(crate) fn new(max_open: u32) -> Self {
        Slots {
            cells: (0..max_open)
                .map(|_| {
                    Mutex::new(Slot {
                        meta: Meta::placeholder(),
                        record: Record::empty(),
                        seq: 0,
                        handed_out: 0,
                    })
                })
                .collect(),
        }
    }

    /// Lock one slot.
    pub(crate) fn get(&self, slot: u32) -> MutexGuard<'_, Slot> {
        self.cells[slot as usize].lock()
    }

    /// Every slot, one lock at a time.
    pub(crate) fn each(&self, mut f: impl FnMut(&mut Slot)) {
        for cell in self.cells.iter() {
            f(&mut cell.lock());
        }
    }

    /// The live checkouts, longest held first.
    pub(crate) fn checkouts(&self, now: Tick) -> Vec<CheckoutInfo> {
        let mut v = Vec::new();
        self.each(|s| {
            if s.record.active {
                v.push(s.info(now));
            }
        });
        v.sort_by_key(|c| std::cmp::Reverse(c.held_for));
        v
    }

    /// Checkouts handed out so far.
    pub(crate) fn handed_out(&self) -> u64 {
        let mut n = 0;
        self.each(|s| n += s.handed_out);
        n
    }

    fn len(&self) -> u64 {
        self.cells.len() as u64
    }
}

/// One live checkout, stored in its connection's registry slot.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) active: bool,
    pub(crate) checkout_id: u64,
    pub(crate) location: &'static Location<'static>,
    pub(crate) label: Option<Cow<'static, str>>,
    pub(crate) since: Tick,
    pub(crate) leak_reported: bool,
    pub(crate) near_timeout_reported: bool,
    pub(crate) backtrace: Option<Arc<std::backtrace::Backtrace>>,
}

impl Record {
    fn empty() -> Self {
        Record {
            active: false,
            checkout_id: 0,
            location: Location::caller(),
            label: None,
            since: Tick::default(),
            leak_reported: false,
            near_timeout_reported: false,
            backtrace: None,
        }
    }
}

impl Slot {
    /// Record a checkout; returns its id, unique in the pool:
    /// `seq * slots + slot`.
    pub(crate) fn register(
        &mut self,
        slot: u32,
        slots: &Slots,
        location: &'static Location<'static>,
        since: Tick,
    ) -> u64 {
        self.seq += 1;
        self.handed_out += 1;
        let id = self.seq * slots.len() + u64::from(slot);
        let r = &mut self.record;
        r.active = true;
        r.checkout_id = id;
        r.location = location;
        r.since = since;
        r.leak_reported = false;
        r.near_timeout_reported = false;
        id
    }

    /// End the checkout. Returns it when it had been reported as a leak, so
    /// the caller can say it came back.
    pub(crate) fn unregister(&mut self) -> Option<CheckoutInfo> {
        self.record.active = false;
        if self.record.leak_reported
            || self.record.label.is_some()
            || self.record.backtrace.is_some()
        {
            return self.unregister_slow();
        }
        None
    }

    #[cold]
    fn unregister_slow(&mut self) -> Option<CheckoutInfo> {
        let reported = self
            .record
            .leak_reported
            .then(|| self.info(crate::clock::now()));
        self.record.label = None;
        self.record.backtrace = None;
        reported
    }

    /// The checkout in this slot, as the public API shows it.
    pub(crate) fn info(&self, now: Tick) -> CheckoutInfo {
        let r = &self.record;
        CheckoutInfo {
            id: r.checkout_id,
            connection_id: self.meta.id,
            location: r.location,
            label: r.label.clone(),
            held_for: now.since(r.since),
            connection_age: now.since(self.meta.created),
            server_idle_timeout: self.meta.server_idle_timeout,
            leak_reported: r.leak_reported,
        }
    }
}

/// Why connects are not succeeding, and when to try again.
#[derive(Default)]
pub(crate) struct ConnectState {
    /// Failed connects in a row; 0 after any success.
    pub(crate) failures: u32,
    pub(crate) last_error: Option<SharedError>,
    /// Connect attempts started so far; each attempt's number is the
    /// value after its start.
    pub(crate) attempts: u64,
    /// The number of the attempt that produced `last_error`.
    pub(crate) last_error_attempt: u64,
    /// The last error was fatal (F11).
    pub(crate) fatal: bool,
    /// No new connect before this (backoff).
    pub(crate) next_attempt: Option<Tick>,
}

/// What the state publishes for lock-free reads by waiting checkouts.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Checkouts waiting for a connection.
    pub(crate) waiting: AtomicU32,
    /// Mirror of `ConnectState::attempts`.
    pub(crate) attempts: AtomicU64,
    /// A hint: every connection the pool may open is open or opening, and
    /// connecting is not failing, so a waiting checkout has no connect to
    /// plan. A stale value only delays planning until the next wake-up
    /// (every change that matters wakes waiters), never loses it.
    pub(crate) settled: AtomicBool,
}

/// Everything guarded by the pool's lock.
pub(crate) struct State<C> {
    pub(crate) idle: VecDeque<Idle<C>>,
    pub(crate) open: u32,
    pub(crate) connecting: u32,
    pub(crate) summary: Arc<Summary>,
    /// Connections being reset off the caller's path.
    pub(crate) resetting: u32,
    free: Vec<u32>,
    pub(crate) next_connection_id: u64,
    pub(crate) connect: ConnectState,
    pub(crate) closed: bool,
    max_open: u32,
}

impl<C> State<C> {
    pub(crate) fn new(max_open: u32) -> Self {
        State {
            idle: VecDeque::with_capacity(max_open as usize),
            open: 0,
            connecting: 0,
            summary: Arc::default(),
            resetting: 0,
            free: (0..max_open).rev().collect(),
            next_connection_id: 1,
            connect: ConnectState::default(),
            closed: false,
            max_open,
        }
    }

    /// Refresh the published summary after a change of counts or of the
    /// connect state.
    pub(crate) fn publish(&self) {
        let settled = !self.closed
            && self.open + self.connecting >= self.max_open
            && self.connect.failures == 0;
        self.summary.settled.store(settled, Relaxed);
        self.summary.attempts.store(self.connect.attempts, Relaxed);
    }

    /// Checkouts waiting for a connection.
    pub(crate) fn waiting(&self) -> u32 {
        self.summary.waiting.load(Relaxed)
    }

    /// Checked-out connections.
    pub(crate) fn in_use(&self) -> u32 {
        self.open
            .saturating_sub(self.idle.len() as u32)
            .saturating_sub(self.resetting)
    }

    /// Reserve room for one connect, if the limits allow it.
    /// Returns the attempt's number.
    pub(crate) fn reserve_connect(&mut self) -> Option<u64> {
        if self.closed || self.open + self.connecting >= self.max_open {
            return None;
        }
        self.connecting += 1;
        self.connect.attempts += 1;
        self.publish();
        Some(self.connect.attempts)
    }

    /// A connect finished: turn its reservation into an open connection.
    /// Returns its slot and its connection id; the caller fills the slot.
    pub(crate) fn opened(&mut self) -> (u32, u64) {
        self.connecting -= 1;
        self.open += 1;
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        // Cannot fail: max_open slots exist, each open connection holds one,
        // and the reservation guaranteed open < max_open.
        let slot = self.free.pop().unwrap_or_default();
        self.publish();
        (slot, id)
    }

    /// A connect failed or was abandoned: drop its reservation.
    pub(crate) fn connect_abandoned(&mut self) {
        self.connecting -= 1;
        self.publish();
    }

    /// A connection is gone (closed or detached): free its slot. The caller
    /// has cleared the slot's record.
    pub(crate) fn forget(&mut self, slot: u32) {
        self.open -= 1;
        self.free.push(slot);
        self.publish();
    }

    pub(crate) fn push_idle(&mut self, idle: Idle<C>) {
        self.idle.push_back(idle);
    }

    pub(crate) fn pop_idle(&mut self, order: IdleOrder) -> Option<Idle<C>> {
        match order {
            IdleOrder::Lifo => self.idle.pop_back(),
            IdleOrder::Fifo => self.idle.pop_front(),
        }
    }

    /// Check the invariants (tests).
    #[cfg(test)]
    pub(crate) fn debug_check(&self) {
        assert!(
            self.open + self.connecting <= self.max_open,
            "over max_open"
        );
        assert_eq!(
            self.free.len() as u32 + self.open,
            self.max_open,
            "slot accounting"
        );
        assert!(self.idle.len() as u32 + self.resetting <= self.open);
    }
}
