//! # One timer per manager for every command deadline
//!
//! Every command a borrower runs through [`PgConn`](crate::PgConn) is
//! bounded by a deadline (`command_timeout`, 30 s by default, and the
//! checkout's), and almost every command finishes long before it. A tokio
//! timer per command (`tokio::time::sleep_until` raced against the command)
//! pays for that on every command: registering the timer in the runtime's
//! timer wheel and removing it again. Likewise a `CancellationToken` child
//! per connection for `Pool::close`'s cut costs a mutex per command and a
//! waiter registration. This is the MySQL manager's watchdog
//! (`poolwarden-mysql/src/watchdog.rs`), with the cut folded in.
//!
//! # Implementation Details
//!
//! A connection owns one [`Watch`], registered with its manager's
//! [`Watchdog`] once, when the connection opens. A command *arms* the watch
//! with its deadline (a compare-and-swap from idle, and publishing the
//! deadline into the watchdog's `earliest`: a plain load in the steady
//! state, where an older command's earlier deadline is already there) and
//! *disarms* it when it finishes (one store). While it waits it registers
//! its waker in the watch (an `AtomicWaker`). One watchdog task per manager
//! sleeps until the earliest published deadline, then looks at every watch:
//! it *fires* the armed ones whose deadline has passed (a compare-and-swap
//! from that very deadline, so a watch that finished or was re-armed
//! meanwhile is left alone) and wakes their commands, and publishes the
//! earliest deadline of the others. A published deadline whose command
//! finished costs one wake-up of the watchdog and one look at the watches,
//! about once per `command_timeout`.
//!
//! Never a missed deadline: a command stores its deadline *before* it
//! publishes it; the watchdog empties `earliest` *before* it reads the
//! watches (all sequentially consistent), so either its reading sees the
//! deadline, or the publication comes after the emptying and is kept.
//!
//! tokio-postgres runs commands through `&Client`, so a borrower may run
//! two at once on one connection (`tokio::join!`). The watch holds one:
//! a second command finds it armed and runs under a timer of its own
//! ([`Limit::Timer`]), as every command did before.
//!
//! The cut (`Pool::close` at its `close_timeout`): [`Watchdog::cut`] sets
//! a flag and wakes every watch's waker and the timer-bound commands'
//! [`Notify`]; a command looks at the flag after registering its waker
//! (the `AtomicWaker` pattern), so none sleeps through it, and none starts
//! after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

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

/// The deadlines of one manager's commands in flight, and its cut (see the
/// module docs).
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
    /// [`Watchdog::cut`] was called.
    cut: AtomicBool,
    /// Wakes the commands bound by a timer of their own at the cut.
    cut_waiters: Notify,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("cut", &self.cut.load(Relaxed))
            .finish_non_exhaustive()
    }
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
            cut: AtomicBool::new(false),
            cut_waiters: Notify::new(),
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

    /// End every command in flight on the watchdog's connections (they
    /// fail with `PoolClosed`), and refuse later ones.
    pub(crate) fn cut(&self) {
        self.cut.store(true, SeqCst);
        let watches: Vec<Arc<Watch>> = self
            .watches
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for watch in watches {
            watch.waker.wake();
        }
        self.cut_waiters.notify_waiters();
    }

    /// Whether [`cut`](Self::cut) was called.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(SeqCst)
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

/// Why a command's [`Limit`] ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its deadline passed.
    Deadline,
    /// The watchdog was [cut](Watchdog::cut).
    Cut,
}

impl Watch {
    /// Whether the watchdog was [cut](Watchdog::cut).
    pub(crate) fn is_cut(&self) -> bool {
        self.dog.is_cut()
    }

    /// The bound of one command: until `at` (`None`: no deadline) or the
    /// cut. A future to race against the command; dropping it disarms the
    /// watch.
    pub(crate) fn limit(&self, at: Option<Instant>) -> Limit<'_> {
        let Some(at) = at else {
            return Limit::Cut(self, Box::pin(self.dog.cut_waiters.notified()));
        };
        let deadline = self.dog.nanos(at);
        if self
            .state
            .compare_exchange(IDLE, deadline, SeqCst, SeqCst)
            .is_ok()
        {
            self.dog.publish(deadline);
            Limit::Watch(self)
        } else {
            // Another command on this connection holds the watch.
            Limit::Timer(
                self,
                Box::pin(tokio::time::sleep_until(at)),
                Box::pin(self.dog.cut_waiters.notified()),
            )
        }
    }
}

/// A command's bound (see [`Watch::limit`]).
pub(crate) enum Limit<'a> {
    /// Armed on the connection's watch.
    Watch(&'a Watch),
    /// A second command at once on the connection: a timer of its own.
    Timer(
        &'a Watch,
        Pin<Box<tokio::time::Sleep>>,
        Pin<Box<tokio::sync::futures::Notified<'a>>>,
    ),
    /// No deadline: only the cut.
    Cut(&'a Watch, Pin<Box<tokio::sync::futures::Notified<'a>>>),
}

impl Future for Limit<'_> {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        match self.get_mut() {
            Limit::Watch(watch) => {
                watch.waker.register(cx.waker());
                if watch.dog.is_cut() {
                    Poll::Ready(Ended::Cut)
                } else if watch.state.load(SeqCst) == FIRED {
                    Poll::Ready(Ended::Deadline)
                } else {
                    Poll::Pending
                }
            }
            Limit::Timer(watch, sleep, cut) => {
                if poll_cut(watch, cut, cx) {
                    Poll::Ready(Ended::Cut)
                } else if sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Ended::Deadline)
                } else {
                    Poll::Pending
                }
            }
            Limit::Cut(watch, cut) => {
                if poll_cut(watch, cut, cx) {
                    Poll::Ready(Ended::Cut)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// The cut, for a command not on the watch: registered with the
/// [`Notify`] before the flag is read.
fn poll_cut(
    watch: &Watch,
    cut: &mut Pin<Box<tokio::sync::futures::Notified<'_>>>,
    cx: &mut Context<'_>,
) -> bool {
    cut.as_mut().enable();
    watch.dog.is_cut() || cut.as_mut().poll(cx).is_ready()
}

impl Drop for Limit<'_> {
    fn drop(&mut self) {
        if let Limit::Watch(watch) = self {
            watch.state.store(IDLE, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    /// A command raced against its limit, as `PgConn::run` does.
    async fn run<T>(
        watch: &Watch,
        at: Option<Instant>,
        command: impl Future<Output = T>,
    ) -> Result<T, Ended> {
        tokio::select! {
            biased;
            out = command => Ok(out),
            ended = watch.limit(at) => Err(ended),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_past_its_deadline_is_cut_at_it() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        let start = Instant::now();
        let out = run(&watch, Some(start + 2 * S), std::future::pending::<()>()).await;
        assert_eq!(out, Err(Ended::Deadline));
        assert_eq!(Instant::now(), start + 2 * S, "cut at its deadline");
        // The next command on the connection is not hit by the old firing.
        assert_eq!(
            run(&watch, Some(Instant::now() + S), async { 7 }).await,
            Ok(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn finished_commands_leave_later_ones_alone() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        // An early deadline published by a command that finished at once.
        assert_eq!(
            run(&watch, Some(Instant::now() + S), async { 1 }).await,
            Ok(1)
        );
        let start = Instant::now();
        let slow = run(&watch, Some(start + 3 * S), tokio::time::sleep(2 * S)).await;
        assert_eq!(slow, Ok(()), "the stale deadline at 1 s fired nothing");
        assert_eq!(Instant::now(), start + 2 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn two_commands_at_once_on_one_connection_each_end_at_their_deadline() {
        let dog = Watchdog::new();
        let watch = dog.watch();
        let start = Instant::now();
        let first = run(&watch, Some(start + 3 * S), std::future::pending::<()>());
        let second = run(&watch, Some(start + S), std::future::pending::<()>());
        let (first, second) = tokio::join!(
            async {
                let r = first.await;
                (r, Instant::now())
            },
            async {
                let r = second.await;
                (r, Instant::now())
            }
        );
        assert_eq!(first, (Err(Ended::Deadline), start + 3 * S));
        assert_eq!(second, (Err(Ended::Deadline), start + S), "on a timer");
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_is_cut_at_its_own_deadline() {
        let dog = Watchdog::new();
        let (a, b) = (dog.watch(), dog.watch());
        let start = Instant::now();
        let late = tokio::spawn(async move {
            let r = run(
                &b,
                Some(Instant::now() + 5 * S),
                std::future::pending::<()>(),
            )
            .await;
            assert_eq!(r, Err(Ended::Deadline));
            Instant::now()
        });
        tokio::task::yield_now().await; // the later deadline is published first
        let r = run(&a, Some(start + S), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Ended::Deadline));
        assert_eq!(Instant::now(), start + S);
        assert_eq!(late.await.unwrap(), start + 5 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cut_ends_every_command_in_flight_and_refuses_later_ones() {
        let dog = Watchdog::new();
        let (a, b) = (dog.watch(), dog.watch());
        let far = Instant::now() + 3600 * S;
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        let watched =
            tokio::spawn(async move { run(&a2, Some(far), std::future::pending::<()>()).await });
        let unbounded =
            tokio::spawn(async move { run(&b2, None, std::future::pending::<()>()).await });
        let second = {
            let a = Arc::clone(&a);
            tokio::spawn(async move {
                tokio::task::yield_now().await; // the first holds the watch
                run(&a, Some(far), std::future::pending::<()>()).await
            })
        };
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        dog.cut();
        assert_eq!(watched.await.unwrap(), Err(Ended::Cut));
        assert_eq!(unbounded.await.unwrap(), Err(Ended::Cut));
        assert_eq!(second.await.unwrap(), Err(Ended::Cut));
        assert_eq!(Instant::now(), start, "at once");
        assert_eq!(
            run(&b, Some(far), std::future::pending::<()>()).await,
            Err(Ended::Cut)
        );
    }
}
