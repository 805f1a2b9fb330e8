//! # The checkouts waiting for a connection
//!
//! A FIFO queue kept inside the inventory's state, under the same lock as
//! the idle set, so "is a connection idle, or do I queue?" and "does a
//! returned connection go to a waiter, or to the idle set?" are each one
//! decision under one lock, and a returned connection goes straight to the
//! oldest waiter: a new checkout cannot barge ahead of it (F7).
//!
//! # Implementation details
//! - A waiting checkout owns one [`Entry`] in a slab (`entries`), found by
//!   its key; keys are reused through `free`, so in steady state a wait
//!   allocates nothing. The queue holds keys in arrival order.
//! - A connection for a waiter is put *into its entry* (`granted`) by the
//!   return path, which then wakes it; the waiter takes it out on its next
//!   poll. A waiter gone meanwhile (its future dropped) hands it on
//!   ([`Inventory::leave`](crate::inventory::Inventory::leave)).
//! - A cancelled waiter is only marked `abandoned` (O(1)); its key leaves
//!   the queue when it reaches the front, or in a compaction once the
//!   abandoned keys are the majority, so the queue stays bounded by twice
//!   the live waiters.
//! - Pool events that need every waiter to look again (a connect finished,
//!   a connection closed, the server stopped answering, the pool closed)
//!   set `woken` on every queued entry and wake it; it keeps its place.
//! - Each entry carries `wake_at`, when the pool's one sweeper task must
//!   wake it (its deadline, or earlier: a backoff's end, a black-hole
//!   probe's end). The waiter has no timer of its own (`deadlines.rs`).

use std::collections::VecDeque;
use std::task::Waker;

use tokio::time::Instant;

use crate::inventory::Live;

/// One waiting checkout.
struct Entry<C> {
    waker: Option<Waker>,
    /// A connection handed to this waiter by the return path.
    granted: Option<Live<C>>,
    /// A pool event asks it to look again (plan connects, check its
    /// deadline, fail fast).
    woken: bool,
    /// When the sweeper must wake it.
    wake_at: Option<Instant>,
    /// In `queue` (it may be abandoned there).
    queued: bool,
    /// Its checkout is gone; the key leaves the queue lazily.
    abandoned: bool,
}

impl<C> Entry<C> {
    fn new() -> Self {
        Entry {
            waker: None,
            granted: None,
            woken: false,
            wake_at: None,
            queued: false,
            abandoned: false,
        }
    }
}

/// What a waiter's poll found.
pub(crate) enum Polled<C> {
    /// A connection, handed over by the return path (or found idle).
    Granted(Live<C>),
    /// A pool event: look again (it keeps its place in the queue).
    Woken,
    /// Still waiting.
    Pending,
}

/// The queue of waiting checkouts (see the module docs).
pub(crate) struct Waiters<C> {
    entries: Vec<Entry<C>>,
    free: Vec<u32>,
    queue: VecDeque<u32>,
    /// Keys in `queue` whose checkout is gone.
    abandoned: usize,
}

impl<C> Waiters<C> {
    pub(crate) fn new() -> Self {
        Waiters {
            entries: Vec::new(),
            free: Vec::new(),
            queue: VecDeque::new(),
            abandoned: 0,
        }
    }

    /// Checkouts waiting now.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() - self.abandoned
    }

    /// Queue a new waiter: at the back, or at the front for a checkout
    /// that already waited its turn and lost the connection it was given
    /// (it failed its ping or had to retire). Returns its key.
    pub(crate) fn join(&mut self, front: bool) -> u32 {
        let key = match self.free.pop() {
            Some(k) => k,
            None => {
                self.entries.push(Entry::new());
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[key as usize];
        e.queued = true;
        if front {
            self.queue.push_front(key);
        } else {
            self.queue.push_back(key);
        }
        key
    }

    /// A queued waiter's poll: take what was granted, or report an event,
    /// or record the waker and when the sweeper must wake it. Returns
    /// whether `wake_at` changed (the caller publishes it).
    pub(crate) fn poll(&mut self, key: u32, waker: &Waker, wake_at: Instant) -> (Polled<C>, bool) {
        let e = &mut self.entries[key as usize];
        if let Some(live) = e.granted.take() {
            // Taken off the queue by the return path that granted it.
            self.release(key);
            return (Polled::Granted(live), false);
        }
        if std::mem::take(&mut e.woken) {
            return (Polled::Woken, false);
        }
        match &e.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => e.waker = Some(waker.clone()),
        }
        let changed = e.wake_at != Some(wake_at);
        e.wake_at = Some(wake_at);
        (Polled::Pending, changed)
    }

    /// The return path: give `live` to the oldest waiter, if any, and
    /// return the waker to wake (after the lock is released). `Err(live)`
    /// when nobody waits.
    pub(crate) fn grant(&mut self, live: Live<C>) -> Result<Option<Waker>, Live<C>> {
        while let Some(key) = self.queue.pop_front() {
            let e = &mut self.entries[key as usize];
            e.queued = false;
            if e.abandoned {
                self.abandoned -= 1;
                self.release(key);
                continue;
            }
            e.granted = Some(live);
            return Ok(e.waker.take());
        }
        Err(live)
    }

    /// A waiter's checkout is gone (its future dropped, or it stopped
    /// waiting). Returns a connection it had been granted but not taken:
    /// the caller hands it on.
    pub(crate) fn leave(&mut self, key: u32) -> Option<Live<C>> {
        let e = &mut self.entries[key as usize];
        let granted = e.granted.take();
        e.waker = None;
        if e.queued {
            e.abandoned = true;
            self.abandoned += 1;
            self.compact();
        } else {
            self.release(key);
        }
        granted
    }

    /// Wake every queued waiter (a pool event); returns their wakers.
    pub(crate) fn wake_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for &key in &self.queue {
            let e = &mut self.entries[key as usize];
            if !e.abandoned {
                e.woken = true;
                wakers.extend(e.waker.take());
            }
        }
        wakers
    }

    /// The sweeper: wake the waiters whose `wake_at` has passed; returns
    /// their wakers and the earliest `wake_at` of the others.
    pub(crate) fn sweep(&mut self, now: Instant) -> (Vec<Waker>, Option<Instant>) {
        let mut wakers = Vec::new();
        let mut next: Option<Instant> = None;
        for &key in &self.queue {
            let e = &mut self.entries[key as usize];
            if e.abandoned {
                continue;
            }
            match e.wake_at {
                Some(at) if at <= now => {
                    e.woken = true;
                    e.wake_at = None;
                    wakers.extend(e.waker.take());
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        (wakers, next)
    }

    /// Drop the abandoned keys once they are the majority, so the queue
    /// stays within twice the live waiters (amortised O(1) per leave).
    fn compact(&mut self) {
        if self.abandoned < 16 || self.abandoned * 2 < self.queue.len() {
            return;
        }
        let entries = &mut self.entries;
        let free = &mut self.free;
        self.queue.retain(|&key| {
            let e = &mut entries[key as usize];
            if e.abandoned {
                *e = Entry::new();
                free.push(key);
                false
            } else {
                true
            }
        });
        self.abandoned = 0;
    }

    fn release(&mut self, key: u32) {
        self.entries[key as usize] = Entry::new();
        self.free.push(key);
    }

    /// Check the queue's accounting (tests).
    #[cfg(test)]
    pub(crate) fn debug_check(&self) {
        let abandoned = self
            .queue
            .iter()
            .filter(|&&k| self.entries[k as usize].abandoned)
            .count();
        assert_eq!(abandoned, self.abandoned, "abandoned count");
        assert!(
            self.queue.iter().all(|&k| self.entries[k as usize].queued),
            "queued flag"
        );
    }
}
