//! The pool's accounting, kept under one lock: idle connections, counts of
//! open/connecting/waiting connections, and the checkout registry.
//!
//! # Invariants (kept by the methods below, checked by `debug_check`)
//! - `open + connecting <= max_open`: a connect is only started through
//!   [`State::reserve_connect`], which checks it.
//! - Every open connection owns exactly one registry slot; `free` holds the
//!   others. A slot is freed exactly once, by [`State::forget`].
//! - The semaphore's permits equal the idle connections not yet claimed: a
//!   connection is pushed with [`State::push_idle`] and then exactly one
//!   permit is added; a permit is taken (and forgotten) before
//!   [`State::pop_idle`]. So a permit holder always finds a connection.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Tick;
use crate::config::IdleOrder;
use crate::error::SharedError;
use crate::health::Meta;
use crate::status::CheckoutInfo;

/// An idle connection and what the pool knows about it.
pub(crate) struct Idle<C> {
    pub(crate) conn: C,
    pub(crate) meta: Meta,
}

/// One live checkout, stored in its connection's registry slot.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) active: bool,
    pub(crate) checkout_id: u64,
    pub(crate) connection_id: u64,
    pub(crate) location: &'static Location<'static>,
    pub(crate) label: Option<Cow<'static, str>>,
    pub(crate) since: Tick,
    pub(crate) conn_created: Tick,
    pub(crate) server_idle_timeout: Option<Duration>,
    pub(crate) leak_reported: bool,
    pub(crate) near_timeout_reported: bool,
    pub(crate) backtrace: Option<Arc<std::backtrace::Backtrace>>,
}

impl Record {
    fn empty() -> Self {
        Record {
            active: false,
            checkout_id: 0,
            connection_id: 0,
            location: Location::caller(),
            label: None,
            since: Tick::default(),
            conn_created: Tick::default(),
            server_idle_timeout: None,
            leak_reported: false,
            near_timeout_reported: false,
            backtrace: None,
        }
    }

    pub(crate) fn info(&self, now: Tick) -> CheckoutInfo {
        CheckoutInfo {
            id: self.checkout_id,
            connection_id: self.connection_id,
            location: self.location,
            label: self.label.clone(),
            held_for: now.since(self.since),
            connection_age: now.since(self.conn_created),
            server_idle_timeout: self.server_idle_timeout,
            leak_reported: self.leak_reported,
        }
    }
}

/// Why connects are not succeeding, and when to try again.
#[derive(Default)]
pub(crate) struct ConnectState {
    /// Failed connects in a row; 0 after any success.
    pub(crate) failures: u32,
    pub(crate) last_error: Option<SharedError>,
    /// The last error was fatal (F11).
    pub(crate) fatal: bool,
    /// No new connect before this (backoff).
    pub(crate) next_attempt: Option<Tick>,
}

/// Everything guarded by the pool's lock.
pub(crate) struct State<C> {
    pub(crate) idle: VecDeque<Idle<C>>,
    pub(crate) open: u32,
    pub(crate) connecting: u32,
    pub(crate) waiting: u32,
    /// Connections being reset off the caller's path.
    pub(crate) resetting: u32,
    pub(crate) records: Vec<Record>,
    free: Vec<u32>,
    pub(crate) next_checkout_id: u64,
    pub(crate) next_connection_id: u64,
    /// Successful checkouts so far.
    pub(crate) checkouts: u64,
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
            waiting: 0,
            resetting: 0,
            records: (0..max_open).map(|_| Record::empty()).collect(),
            free: (0..max_open).rev().collect(),
            next_checkout_id: 1,
            next_connection_id: 1,
            checkouts: 0,
            connect: ConnectState::default(),
            closed: false,
            max_open,
        }
    }

    /// Checked-out connections.
    pub(crate) fn in_use(&self) -> u32 {
        self.open
            .saturating_sub(self.idle.len() as u32)
            .saturating_sub(self.resetting)
    }

    /// Reserve room for one connect, if the limits allow it.
    pub(crate) fn reserve_connect(&mut self) -> bool {
        if self.closed || self.open + self.connecting >= self.max_open {
            return false;
        }
        self.connecting += 1;
        true
    }

    /// A connect finished: turn its reservation into an open connection and
    /// give it a registry slot. Returns the slot and the connection id.
    pub(crate) fn opened(&mut self) -> (u32, u64) {
        self.connecting -= 1;
        self.open += 1;
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        // Cannot fail: open <= max_open slots exist and each open connection
        // holds one.
        let slot = self.free.pop().unwrap_or_default();
        (slot, id)
    }

    /// A connect failed or was abandoned: drop its reservation.
    pub(crate) fn connect_abandoned(&mut self) {
        self.connecting -= 1;
    }

    /// A connection is gone (closed or detached): free its slot.
    pub(crate) fn forget(&mut self, slot: u32) {
        self.open -= 1;
        let record = &mut self.records[slot as usize];
        record.active = false;
        record.label = None;
        record.backtrace = None;
        self.free.push(slot);
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

    /// Record a checkout in the connection's slot; returns its id.
    pub(crate) fn register(
        &mut self,
        meta: &Meta,
        location: &'static Location<'static>,
        since: Tick,
    ) -> u64 {
        let id = self.next_checkout_id;
        self.next_checkout_id += 1;
        let r = &mut self.records[meta.slot as usize];
        r.active = true;
        r.checkout_id = id;
        r.connection_id = meta.id;
        r.location = location;
        r.since = since;
        r.conn_created = meta.created;
        r.server_idle_timeout = meta.server_idle_timeout;
        r.leak_reported = false;
        r.near_timeout_reported = false;
        id
    }

    /// End the checkout in `slot`. Returns the record when it had been
    /// reported as a leak, so the caller can say it came back.
    pub(crate) fn unregister(&mut self, slot: u32) -> Option<Record> {
        let r = &mut self.records[slot as usize];
        r.active = false;
        let reported = r.leak_reported.then(|| r.clone());
        r.label = None;
        r.backtrace = None;
        reported
    }

    /// The live checkouts, longest held first.
    pub(crate) fn checkouts(&self, now: Tick) -> Vec<CheckoutInfo> {
        let mut v: Vec<CheckoutInfo> = self
            .records
            .iter()
            .filter(|r| r.active)
            .map(|r| r.info(now))
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.held_for));
        v
    }

    /// Check the invariants (tests and debug builds).
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
