//! # One timer per manager for every command deadline
//!
//! Every command a borrower runs is bounded by a deadline, and almost every
//! command finishes long before it (the default is 30 s). A tokio timer per
//! command (`tokio::time::timeout_at`) pays for that on every command:
//! registering the timer and removing it again from the runtime's timer
//! wheel, and a boxed future around the command; measured on the `SELECT 1`
//! throughput scenario it cost 1-4 µs of client CPU per query
//! (`BENCHMARKS.md`, "Command deadline cost").
//!
//! # Implementation Details
//!
//! A connection owns one [`Watch`], registered with its manager's
//! [`Watchdog`] once, when the connection opens. A command *arms* the watch
//! with its deadline (one atomic store, and publishing the deadline into
//! the watchdog's `earliest`: a plain load in the steady state, where an
//! older command's earlier deadline is already there) and *disarms* it when
//! it finishes (one store). While it waits it registers its waker in the
//! watch (an `AtomicWaker`). One watchdog task per manager sleeps until the
//! earliest published deadline, then looks at every watch: it *fires* the
//! armed ones whose deadline has passed (a compare-and-swap from that very
//! deadline, so a watch that finished or was re-armed meanwhile is left
//! alone) and wakes their commands, and publishes the earliest deadline of
//! the others. A published deadline whose command finished costs one
//! wake-up of the watchdog and one look at the watches, about once per
//! `command_timeout`.
//!
//! Never a missed deadline: a command stores its deadline *before* it
//! publishes it; the watchdog empties `earliest` *before* it reads the
//! watches (all sequentially consistent), so either its reading sees the
//! deadline, or the publication comes after the emptying and is kept.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// `state` of a watch with no command in flight; `earliest` with nothing
/// published.
const IDLE: u64 = u64::MAX;
/// `state` of a watch whose command passed its deadline.
const FIRED: u64 = u64::MAX - 1;
/// The largest deadline a watch holds (far beyond any real one).
const LATEST: u64 = u64::MAX - 2;

/// The deadlines of one manager's commands in flight (see the module
/// docs).
pub(crate) struct Watchdog {
    /// Nanoseconds after `base` of the earliest published deadline, or
    /// [`IDLE`].
    earliest: AtomicU64,
    /// Wakes the task for an earlier deadline, or to end (the watchdog
    /// dropped). Its own `Arc`: the sleeping task holds no strong
    /// reference to the watchdog.
    rearm: Arc<Notify>,
    base: Instant,
    running: AtomicBool,
    watches: Mutex<Vec<Weak<Watch>>>,
}

/// One connection's command in flight, as its watchdog sees it.
pub(crate) struct Watch {
    /// [`IDLE`], [`FIRED`], or the armed command's deadline (nanoseconds
    /// after the watchdog's `base`).
    state: AtomicU64,
    waker: AtomicWaker,
    dog: Arc<Watchdog>,
}

impl Watchdog {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Watchdog {
            earliest: AtomicU64::new(IDLE),
            rearm: Arc::new(Notify::new()),
            base: Instant::now(),
            running: AtomicBool::new(false),
            watches: Mutex::new(Vec::new()),
        })
    }

    /// A watch for a new connection.
    pub(crate) fn watch(self: &Arc<Self>) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            state: AtomicU64::new(IDLE),
            waker: AtomicWaker::new(),
            dog: Arc::clone(self),
        });
        let mut watches = self.watches.lock();
        // Forget closed connections' watches as new ones come (amortised).
        if watches.len() >= 16 && watches.len().is_power_of_two() {
            watches.retain(|w| w.strong_count() > 0);
        }
        watches.push(Arc::downgrade(&watch));
        watch
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(LATEST)
            .min(LATEST)
    }

    fn publish(self: &Arc<Self>, deadline: u64) {
        if deadline < self.earliest.load(SeqCst)
            && deadline < self.earliest.fetch_min(deadline, SeqCst)
        {
            self.rearm.notify_one();
        }
        if !self.running.load(Relaxed) {
            self.start();
        }
    }

    fn start(self: &Arc<Self>) {
        if self.running.swap(true, SeqCst) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, SeqCst);
            return;
        };
        let running = Running(Arc::downgrade(self));
        drop(handle.spawn(watch_over(Arc::downgrade(self), running)));
    }

    /// Fire the watches whose deadline passed; the earliest of the others.
    fn sweep(&self, now: Instant) -> Option<u64> {
        let now = self.nanos(now);
        let mut next: Option<u64> = None;
        let watches: Vec<Arc<Watch>> = self
            .watches
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for watch in watches {
            let state = watch.state.load(SeqCst);
            if state >= FIRED {
                continue;
            }
            if state > now {
                next = Some(next.map_or(state, |n| n.min(state)));
            } else if watch
                .state
                .compare_exchange(state, FIRED, SeqCst, SeqCst)
                .is_ok()
            {
                watch.waker.wake();
            }
        }
        next
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.rearm.notify_one(); // the task ends
    }
}

/// Clears `running` when the watchdog's task ends (its runtime shut down),
/// so the next command that arms a watch starts another.
struct Running(Weak<Watchdog>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(dog) = self.0.upgrade() {
            dog.running.store(false, SeqCst);
        }
    }
}

async fn watch_over(dog: Weak<Watchdog>, _running: Running) {
    let Some(rearm) = dog.upgrade().map(|d| Arc::clone(&d.rearm)) else {
        return;
    };
    loop {
        let notified = rearm.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(d) = dog.upgrade() else { return };
        let earliest = d.earliest.load(SeqCst);
        let at = (earliest != IDLE).then(|| d.base + std::time::Duration::from_nanos(earliest));
        // No strong reference while asleep: once the manager and its
        // connections are gone, the watchdog drops and wakes the task.
        drop(d);
        match at {
            None => notified.await,
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        let Some(d) = dog.upgrade() else { return };
                        d.earliest.swap(IDLE, SeqCst);
                        if let Some(next) = d.sweep(Instant::now()) {
                            d.earliest.fetch_min(next, SeqCst);
                        }
                    }
                    () = &mut notified => {}
                }
            }
        }
    }
}

impl Watch {
    /// Arm the watch until `at` and wait for it to fire: a future to race
    /// against the command (the `Fired` disarms the watch when dropped,
    /// that is when the race ends either way).
    pub(crate) fn until(&self, at: Instant) -> Fired<'_> {
        self.arm(at);
        Fired(self)
    }

    /// Arm the watch with a command's deadline (see [`Watch::until`],
    /// [`Watch::poll_fired`] and [`Watch::disarm`]).
    pub(crate) fn arm(&self, at: Instant) {
        let deadline = self.dog.nanos(at);
        self.state.store(deadline, SeqCst);
        self.dog.publish(deadline);
    }

    /// For an armed watch whose command is waiting: whether its deadline passed
    /// (the waker is registered first, so a later firing wakes it).
    pub(crate) fn poll_fired(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.state.load(SeqCst) == FIRED
    }

    /// The command finished (or was given up): nothing to watch.
    pub(crate) fn disarm(&self) {
        self.state.store(IDLE, SeqCst);
    }
}

/// Waits for an armed watch to fire; disarms it when dropped.
pub(crate) struct Fired<'a>(&'a Watch);

impl Future for Fired<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.0.poll_fired(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Fired<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    /// A command raced against its watch, as `deadline::run` does.
    async fn run<T>(watch: &Watch, at: Instant, command: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            out = command => Some(out),
            () = watch.until(at) => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_past_its_deadline_is_cut_at_it() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        let start = Instant::now();
        let out = run(&watch, start + 2 * S, std::future::pending::<()>()).await;
        assert_eq!(out, None);
        assert_eq!(Instant::now(), start + 2 * S, "cut at its deadline");
        // The next command on the connection is not hit by the old firing.
        assert_eq!(run(&watch, Instant::now() + S, async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn finished_commands_leave_later_ones_alone() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        // An early deadline published by a command that finished at once.
        assert_eq!(run(&watch, Instant::now() + S, async { 1 }).await, Some(1));
        let start = Instant::now();
        let slow = run(&watch, start + 3 * S, tokio::time::sleep(2 * S)).await;
        assert_eq!(slow, Some(()), "the stale deadline at 1 s fired nothing");
        assert_eq!(Instant::now(), start + 2 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_raced_watch_fires_at_its_deadline_and_disarms_when_dropped() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        let start = Instant::now();
        tokio::select! {
            () = watch.until(start + S) => {}
            () = std::future::pending::<()>() => unreachable!(),
        }
        assert_eq!(Instant::now(), start + S);
        // Dropped with the race: the next command is not hit.
        tokio::select! {
            () = watch.until(Instant::now() + 5 * S) => unreachable!("disarmed, re-armed later"),
            () = tokio::time::sleep(S) => {}
        }
        assert_eq!(run(&watch, Instant::now() + S, async { 3 }).await, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_is_cut_at_its_own_deadline() {
        let dog = Watchdog::new();
        let (a, b) = (dog.watch(), dog.watch());
        let start = Instant::now();
        let late = tokio::spawn(async move {
            run(&b, Instant::now() + 5 * S, std::future::pending::<()>())
                .await
                .map_or(Instant::now(), |()| unreachable!())
        });
        tokio::task::yield_now().await; // the later deadline is published first
        assert_eq!(run(&a, start + S, std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now(), start + S);
        assert_eq!(late.await.unwrap(), start + 5 * S);
    }
}
