//! What the pool knows about each open connection: its [`Meta`] (facts,
//! deadlines) and its current checkout ([`Record`]), in one small mutex per
//! connection ([`SlotCell`]). Only the connection's current owner (a guard,
//! a background job, a checkout deciding about it) writes it, so the lock is
//! uncontended except against the leak scanner and `checkouts()`.
//!
//! Slots are allocated as connections open (never up front), kept in the
//! inventory's registry and reused through its free list
//! (`inventory.rs`), so `max_size = u32::MAX` costs nothing until used.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Tick;
use crate::health::Meta;
use crate::status::CheckoutInfo;

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

/// One slot: the connection's index in the registry and its data.
#[derive(Debug)]
pub(crate) struct SlotCell {
    pub(crate) index: u32,
    slot: Mutex<Slot>,
}

impl SlotCell {
    pub(crate) fn new(index: u32) -> Self {
        SlotCell {
            index,
            slot: Mutex::new(Slot {
                meta: Meta::placeholder(),
                record: Record::empty(),
                seq: 0,
                handed_out: 0,
            }),
        }
    }

    /// Lock the slot.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock()
    }
}

/// The live checkouts among `slots`, longest held first.
pub(crate) fn checkouts(slots: &[Arc<SlotCell>], now: Tick) -> Vec<CheckoutInfo> {
    let mut v: Vec<_> = slots
        .iter()
        .filter_map(|cell| {
            let s = cell.lock();
            s.record.active.then(|| s.info(now))
        })
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.held_for));
    v
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
    /// `seq << 32 | slot`.
    pub(crate) fn register(
        &mut self,
        slot: u32,
        location: &'static Location<'static>,
        since: Tick,
    ) -> u64 {
        self.seq += 1;
        self.handed_out += 1;
        let id = (self.seq << 32) | u64::from(slot);
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
