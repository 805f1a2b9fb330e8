//! What [`PgConn`](crate::PgConn) saw the borrowers do since the connection
//! was last made clean: the session effects of their statements, whether a
//! transaction is (or may be) open, and whether a command was dropped
//! before the server answered.
//!
//! Atomics, because tokio-postgres runs commands through `&Client` (several
//! may be in flight at once on one connection).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};

use crate::sql::{Effect, SessionEffect, TxEffect};

/// The tracker's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// The deepest session effect since the last reset.
    pub(crate) session: SessionEffect,
    /// A transaction is open, or may be.
    pub(crate) tx_open: bool,
    /// A command was dropped (by its caller, or cut by a deadline) before
    /// its reply came: the server may still be running it.
    pub(crate) interrupted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    session: AtomicU8,
    tx_open: AtomicBool,
    interrupted: AtomicBool,
}

fn level(e: SessionEffect) -> u8 {
    match e {
        SessionEffect::None => 0,
        SessionEffect::State => 1,
        SessionEffect::Deep => 2,
    }
}

fn effect_of(level: u8) -> SessionEffect {
    match level {
        0 => SessionEffect::None,
        1 => SessionEffect::State,
        _ => SessionEffect::Deep,
    }
}

impl Tracker {
    /// A command with `effect` is about to be sent. The returned [`Op`]
    /// must be [finished](Op::finish) when its reply is complete; dropping
    /// it unfinished records an interrupted command.
    pub(crate) fn start(&self, effect: Effect) -> Op<'_> {
        // No atomic write for a statement that changes nothing (most).
        if effect.session != SessionEffect::None {
            self.session.fetch_max(level(effect.session), Relaxed);
        }
        Op {
            tracker: self,
            tx: effect.tx,
            done: false,
        }
    }

    /// Use the tracker cannot see (the raw client, a driver transaction).
    pub(crate) fn raw(&self) {
        self.session.fetch_max(level(SessionEffect::Deep), Relaxed);
        self.tx_open.store(true, Relaxed);
    }

    pub(crate) fn seen(&self) -> Seen {
        Seen {
            session: effect_of(self.session.load(Relaxed)),
            tx_open: self.tx_open.load(Relaxed),
            interrupted: self.interrupted.load(Relaxed),
        }
    }

    /// Whether a command was interrupted; clears the mark (a plain load
    /// when there is none: no write on every command).
    pub(crate) fn take_interrupted(&self) -> bool {
        self.seen_interrupted() && self.interrupted.swap(false, Relaxed)
    }

    /// Whether a command was interrupted (the mark stays).
    pub(crate) fn seen_interrupted(&self) -> bool {
        self.interrupted.load(Relaxed)
    }

    /// A reset undid everything.
    pub(crate) fn cleaned(&self) {
        self.session.store(0, Relaxed);
        self.tx_open.store(false, Relaxed);
    }

    /// A `ROLLBACK` ended the transaction; session state is untouched.
    pub(crate) fn rolled_back(&self) {
        self.tx_open.store(false, Relaxed);
    }
}

/// One command in flight.
#[must_use]
pub(crate) struct Op<'a> {
    tracker: &'a Tracker,
    tx: TxEffect,
    done: bool,
}

impl Op<'_> {
    /// The reply is complete: `ok` when the command succeeded.
    pub(crate) fn finish(mut self, ok: bool) {
        self.done = true;
        let open = &self.tracker.tx_open;
        match (self.tx, ok) {
            (TxEffect::None, _) => {}
            (TxEffect::Begin, true) => open.store(true, Relaxed),
            (TxEffect::End, true) => open.store(false, Relaxed),
            (TxEffect::Batch { ends_open }, true) => open.store(ends_open, Relaxed),
            // A failed BEGIN, COMMIT or batch: a transaction may be open.
            (_, false) => open.store(true, Relaxed),
        }
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.interrupted.store(true, Relaxed);
            self.tracker.tx_open.store(true, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::effect;

    #[test]
    fn transactions_open_and_close() {
        let t = Tracker::default();
        t.start(effect("BEGIN")).finish(true);
        assert!(t.seen().tx_open);
        t.start(effect("SELECT 1")).finish(false);
        assert!(t.seen().tx_open, "an error inside keeps it open");
        t.start(effect("ROLLBACK")).finish(true);
        assert_eq!(t.seen(), Seen::default());
        t.start(effect("BEGIN; SELECT 1; COMMIT")).finish(true);
        assert!(!t.seen().tx_open);
        t.start(effect("BEGIN; SELECT 1; COMMIT")).finish(false);
        assert!(t.seen().tx_open);
        t.cleaned();
        t.start(effect("COMMIT")).finish(false);
        assert!(t.seen().tx_open, "a failed COMMIT: unknown");
    }

    #[test]
    fn session_effects_only_deepen_until_cleaned() {
        let t = Tracker::default();
        t.start(effect("SET a.b = 1")).finish(true);
        t.start(effect("SELECT 1")).finish(true);
        assert_eq!(t.seen().session, SessionEffect::State);
        t.start(effect("PREPARE p AS SELECT 1")).finish(false);
        assert_eq!(t.seen().session, SessionEffect::Deep);
        t.rolled_back();
        assert_eq!(t.seen().session, SessionEffect::Deep);
        t.cleaned();
        assert_eq!(t.seen().session, SessionEffect::None);
    }

    #[test]
    fn a_dropped_command_is_an_interruption() {
        let t = Tracker::default();
        drop(t.start(effect("SELECT pg_sleep(1)")));
        let seen = t.seen();
        assert!(seen.interrupted && seen.tx_open);
        assert!(t.take_interrupted());
        assert!(!t.seen().interrupted);
        t.raw();
        assert_eq!(t.seen().session, SessionEffect::Deep);
    }
}
