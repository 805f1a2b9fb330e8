//! A scripted manager: each connect, validate and reset takes the next step
//! of its script (Ok, Err, Slow, Never); when the script is empty it is Ok.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::{ConnectionFacts, ErrorClass, Event, Manager, Observer, Probe};

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Ok,
    Err(ErrorClass),
    Slow(Duration),
    Never,
    /// The manager panics.
    Panic,
}

#[derive(Debug, thiserror::Error)]
#[error("scripted error ({0:?})")]
pub(crate) struct ScriptError(pub(crate) ErrorClass);

/// A connection: tests set `probe` through the guard to play a cancelled
/// query, an open transaction, a closed socket.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) probe: Probe,
    /// The deadline `on_hand_out` last saw.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// Times `on_hand_out` was called.
    pub(crate) handed_out: u32,
    live: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connects: AtomicUsize,
    pub(crate) validates: AtomicUsize,
    pub(crate) resets: AtomicUsize,
    /// Connections alive right now (opened, not yet dropped or forgotten).
    pub(crate) live: Arc<AtomicUsize>,
    pub(crate) max_live: AtomicUsize,
}

#[derive(Default)]
pub(crate) struct Script {
    pub(crate) connect: Mutex<VecDeque<Step>>,
    pub(crate) validate: Mutex<VecDeque<Step>>,
    pub(crate) reset: Mutex<VecDeque<Step>>,
    pub(crate) counts: Counts,
    pub(crate) server_idle_timeout: Mutex<Option<Duration>>,
    /// Panic in the next this many `probe` calls.
    pub(crate) probe_panics: AtomicUsize,
    /// Panic in the next this many `facts` calls.
    pub(crate) facts_panics: AtomicUsize,
    /// The server closed the sockets of connections with ids up to this.
    pub(crate) closed_up_to: AtomicU64,
    /// What `attach` got.
    pub(crate) signal: Mutex<Option<crate::ServerSignal>>,
    /// Times `cut_in_flight` was called.
    pub(crate) cuts: AtomicUsize,
    /// Sessions the server has room for (0: no limit), counting starting
    /// sessions before checking, as PostgreSQL's per-role limit does: two
    /// connects in flight together with one place left refuse each other.
    pub(crate) room: AtomicUsize,
    starting: AtomicUsize,
    next_id: AtomicU64,
}

#[derive(Clone, Default)]
pub(crate) struct Scripted(pub(crate) Arc<Script>);

impl Scripted {
    pub(crate) fn connects(&self, steps: impl IntoIterator<Item = Step>) -> &Self {
        self.0.connect.lock().extend(steps);
        self
    }
    pub(crate) fn validates(&self, steps: impl IntoIterator<Item = Step>) -> &Self {
        self.0.validate.lock().extend(steps);
        self
    }
    pub(crate) fn resets(&self, steps: impl IntoIterator<Item = Step>) -> &Self {
        self.0.reset.lock().extend(steps);
        self
    }
    pub(crate) fn count_connects(&self) -> usize {
        self.0.counts.connects.load(SeqCst)
    }
    pub(crate) fn count_validates(&self) -> usize {
        self.0.counts.validates.load(SeqCst)
    }
    pub(crate) fn count_resets(&self) -> usize {
        self.0.counts.resets.load(SeqCst)
    }
    pub(crate) fn live(&self) -> usize {
        self.0.counts.live.load(SeqCst)
    }
    pub(crate) fn panic_probes(&self, n: usize) {
        self.0.probe_panics.store(n, SeqCst);
    }
    /// The server closes the sockets of every connection opened so far.
    pub(crate) fn close_sockets(&self) {
        self.0
            .closed_up_to
            .store(self.0.next_id.load(SeqCst), SeqCst);
    }
    pub(crate) fn panic_facts(&self, n: usize) {
        self.0.facts_panics.store(n, SeqCst);
    }
    /// The manager's own finding: the server stopped answering.
    pub(crate) fn signal_unresponsive(&self) -> bool {
        let signal = self.0.signal.lock().clone().expect("attached");
        signal.unresponsive(ScriptError(ErrorClass::Unresponsive))
    }
    /// The server has room for `n` sessions (see [`Script::room`]).
    pub(crate) fn room_for(&self, n: usize) -> &Self {
        self.0.room.store(n, SeqCst);
        self
    }
    pub(crate) fn count_cuts(&self) -> usize {
        self.0.cuts.load(SeqCst)
    }
    pub(crate) fn max_live(&self) -> usize {
        self.0.counts.max_live.load(SeqCst)
    }
}

async fn run(step: Option<Step>) -> Result<(), ScriptError> {
    match step.unwrap_or(Step::Ok) {
        Step::Ok => Ok(()),
        Step::Err(class) => Err(ScriptError(class)),
        Step::Slow(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Step::Never => std::future::pending().await,
        Step::Panic => panic!("scripted manager panic"),
    }
}

impl Manager for Scripted {
    type Connection = Conn;
    type Error = ScriptError;

    async fn connect(&self) -> Result<Conn, ScriptError> {
        let step = self.0.connect.lock().pop_front();
        self.0.counts.connects.fetch_add(1, SeqCst);
        run(step).await?;
        let room = self.0.room.load(SeqCst);
        if room > 0 {
            // Counted first, checked after the other starting sessions had
            // their turn (a current-thread runtime runs them in between).
            self.0.starting.fetch_add(1, SeqCst);
            tokio::task::yield_now().await;
            let full = self.live() + self.0.starting.load(SeqCst) > room;
            if full {
                // A refused session is counted until it has exited.
                tokio::task::yield_now().await;
                self.0.starting.fetch_sub(1, SeqCst);
                return Err(ScriptError(ErrorClass::Keep));
            }
            self.0.starting.fetch_sub(1, SeqCst);
        }
        let live = self.0.counts.live.fetch_add(1, SeqCst) + 1;
        self.0.counts.max_live.fetch_max(live, SeqCst);
        Ok(Conn {
            id: self.0.next_id.fetch_add(1, SeqCst) + 1,
            probe: Probe::Clean,
            deadline: None,
            handed_out: 0,
            live: Arc::clone(&self.0.counts.live),
        })
    }

    async fn validate(&self, conn: &mut Conn) -> Result<(), ScriptError> {
        let step = self.0.validate.lock().pop_front();
        self.0.counts.validates.fetch_add(1, SeqCst);
        run(step).await?;
        if conn.probe == Probe::Closed {
            return Err(ScriptError(ErrorClass::Disconnect));
        }
        Ok(())
    }

    fn probe(&self, conn: &mut Conn) -> Probe {
        if take_one(&self.0.probe_panics) {
            panic!("scripted probe panic");
        }
        if conn.id <= self.0.closed_up_to.load(SeqCst) {
            return Probe::Closed;
        }
        conn.probe
    }

    fn attach(&self, signal: crate::ServerSignal) {
        *self.0.signal.lock() = Some(signal);
    }

    fn cut_in_flight(&self) {
        self.0.cuts.fetch_add(1, SeqCst);
    }

    fn on_hand_out(&self, conn: &mut Conn, deadline: Option<tokio::time::Instant>) {
        conn.deadline = deadline;
        conn.handed_out += 1;
    }

    async fn reset(&self, conn: &mut Conn) -> Result<(), ScriptError> {
        let step = self.0.reset.lock().pop_front();
        self.0.counts.resets.fetch_add(1, SeqCst);
        run(step).await?;
        conn.probe = Probe::Clean;
        Ok(())
    }

    fn classify(&self, error: &ScriptError) -> ErrorClass {
        error.0
    }

    fn facts(&self, _: &Conn) -> ConnectionFacts {
        if take_one(&self.0.facts_panics) {
            panic!("scripted facts panic");
        }
        ConnectionFacts::with_idle_timeout(*self.0.server_idle_timeout.lock())
    }
}

/// Decrement `n` if positive; whether it was.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1)).is_ok()
}

/// Records every event as text.
#[derive(Default)]
pub(crate) struct Recorder(pub(crate) Mutex<Vec<String>>);

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Leak { checkout } => {
                format!("leak {} {:?}", checkout.location, checkout.label.as_deref())
            }
            Event::LeakResolved { checkout } => format!("leak_resolved {}", checkout.id),
            Event::NearServerTimeout { checkout } => format!("near_timeout {}", checkout.location),
            Event::Invalidated { cause, .. } => format!("invalidated {cause:?}"),
            Event::Discarded { reason, .. } => format!("discarded {}", reason.as_str()),
            Event::ConnectFailed { class, .. } => format!("connect_failed {class:?}"),
            Event::Connected { .. } => "connected".to_owned(),
            Event::CheckedOut { .. } => "checked_out".to_owned(),
            Event::CheckedIn { .. } => "checked_in".to_owned(),
            Event::CallFailed { call, class, .. } => {
                format!("call_failed {} {class:?}", call.as_str())
            }
        };
        self.0.lock().push(line);
    }
}

impl Recorder {
    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
    pub(crate) fn find(&self, prefix: &str) -> Option<String> {
        self.0
            .lock()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
    }
}
