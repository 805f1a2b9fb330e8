//! Command deadlines: every command a borrower runs through a
//! [`MySqlConn`](crate::MySqlConn) ends by a deadline, so a server that stops
//! answering (SIGSTOP, a dropped route, a hung proxy) never holds a caller
//! longer than it chose.
//!
//! # Implementation Details
//!
//! mysql_async has no read timeout, and TCP keepalive does not fire while the
//! server's kernel still acknowledges. So the bound is on the command's
//! future: [`run`] races it against the deadline, through the connection's
//! [`Watch`](crate::watchdog::Watch) (one timer per manager for every
//! command, `watchdog.rs`; a connection made outside a manager, and a
//! result-set stream for its life, use a tokio timer instead). When the deadline wins, the driver's future is
//! dropped mid-command, which leaves mysql_async's "disconnected until the
//! command completed" flag set; the connection is also marked timed out, so
//! the probe says `Corrupt` and the pool closes it (its protocol state is
//! unknown: a late answer would go to the next command). The server is told
//! to stop the work by the manager's [`Killer`](crate::kill::Killer), off the
//! caller's path.
//!
//! The deadline of one command is the earliest of
//! * now + the command timeout: the manager's
//!   [`command_timeout`](crate::MySqlManager::command_timeout), replaced for
//!   one checkout by [`MySqlConn::set_command_timeout`](crate::MySqlConn::set_command_timeout)
//!   and for some calls by [`MySqlConn::with_timeout`](crate::MySqlConn::with_timeout);
//! * the checkout's deadline (the caller's, from `Pool::get_until`), replaced
//!   for one checkout by [`MySqlConn::set_deadline`](crate::MySqlConn::set_deadline).
//!
//! Both overrides last until the connection goes back to the pool.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::abort::{CommandCut, Switch};
use crate::ambiguous::{self, OutcomeUnknown};
use crate::kill::Killer;
use crate::MySqlConn;

/// Where the deadline that ended a command came from: what to raise if the
/// command was legitimately slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadlineSource {
    /// The manager's [`command_timeout`](crate::MySqlManager::command_timeout).
    CommandTimeout,
    /// This checkout's [`MySqlConn::set_command_timeout`](crate::MySqlConn::set_command_timeout).
    CheckoutTimeout,
    /// A per-call [`MySqlConn::with_timeout`](crate::MySqlConn::with_timeout).
    CallTimeout,
    /// The deadline the checkout carried (`Pool::get_until`, a request's
    /// deadline in `poolwarden-axum`).
    CheckoutDeadline,
    /// This checkout's [`MySqlConn::set_deadline`](crate::MySqlConn::set_deadline).
    SetDeadline,
}

impl DeadlineSource {
    /// What the user can change, for the error message.
    fn remedy(self) -> &'static str {
        match self {
            DeadlineSource::CommandTimeout => {
                "raise MySqlManager::command_timeout, or this checkout's with conn.set_command_timeout(..)"
            }
            DeadlineSource::CheckoutTimeout => "raise conn.set_command_timeout(..)",
            DeadlineSource::CallTimeout => "raise conn.with_timeout(..)",
            DeadlineSource::CheckoutDeadline => {
                "the caller's deadline (Pool::get_until, the request's deadline) had passed; extend it, or conn.set_deadline(..)"
            }
            DeadlineSource::SetDeadline => "extend conn.set_deadline(..)",
        }
    }
}

/// A command passed its deadline: the error a borrower gets, inside
/// [`mysql_async::Error::Other`]. Find it with [`CommandTimeout::find`].
///
/// The connection it ran on is discarded by the pool (never reused) and the
/// server is asked to stop the work (`KILL CONNECTION`, see
/// [`MySqlManager::kill_timeout`](crate::MySqlManager::kill_timeout)).
/// [`classify_error`](crate::classify_error) maps it to
/// [`ErrorClass::Broken`](poolwarden::ErrorClass::Broken) (this connection
/// only); the manager itself finds out whether the server stopped answering
/// (see [`MySqlManager::unresponsive_after`](crate::MySqlManager::unresponsive_after)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandTimeout {
    /// The method that ran the command (`"query_drop"`, `"exec_first"`, ...).
    pub command: &'static str,
    /// How long the command had (from its start to its deadline).
    pub waited: Duration,
    /// The server's id of the connection (`CONNECTION_ID()`).
    pub connection_id: u32,
    /// Which deadline ended it.
    pub source: DeadlineSource,
    /// Whether the command was sent. `false`: its deadline had already
    /// passed when it was called, so nothing was sent; the connection is
    /// untouched and stays usable.
    pub sent: bool,
}

impl CommandTimeout {
    /// The command deadline error inside `error`, if that is what it is.
    /// (Also through an [`OutcomeUnknown`](crate::OutcomeUnknown).)
    pub fn find(error: &mysql_async::Error) -> Option<&CommandTimeout> {
        crate::ambiguous::find(error)
    }
}

impl fmt::Display for CommandTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.sent {
            return write!(
                f,
                "MySQL command `{}` on connection {} was not sent: its deadline had already \
                 passed. To give it time: {}",
                self.command,
                self.connection_id,
                self.source.remedy()
            );
        }
        write!(
            f,
            "MySQL command `{}` on connection {} got no answer within {} ms (its deadline); \
             the connection is discarded and the server told to stop it. If the server is \
             healthy and the command just slow: {}",
            self.command,
            self.connection_id,
            self.waited.as_millis(),
            self.source.remedy()
        )
    }
}

impl std::error::Error for CommandTimeout {}

impl From<CommandTimeout> for mysql_async::Error {
    fn from(e: CommandTimeout) -> Self {
        mysql_async::Error::Other(Box::new(e))
    }
}

/// The deadline of one command and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) at: Instant,
    pub(crate) source: DeadlineSource,
    pub(crate) started: Instant,
}

/// A connection's deadline settings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Deadlines {
    /// The manager's `command_timeout`.
    default_timeout: Option<Duration>,
    /// This checkout's [`MySqlConn::set_command_timeout`]; `Some(None)`
    /// turns the per-command bound off.
    ///
    /// [`MySqlConn::set_command_timeout`]: crate::MySqlConn::set_command_timeout
    checkout_timeout: Option<Option<Duration>>,
    /// A [`MySqlConn::with_timeout`] in effect.
    ///
    /// [`MySqlConn::with_timeout`]: crate::MySqlConn::with_timeout
    call_timeout: Option<Duration>,
    /// The checkout's deadline and whether `set_deadline` replaced it.
    deadline: Option<(Instant, DeadlineSource)>,
}

impl Bound {
    /// The deadline had passed when the command was called: do not send it
    /// (a command sent now could still be applied by the server while its
    /// caller is told it failed).
    pub(crate) fn already_passed(&self) -> bool {
        self.at <= self.started
    }
}

impl Deadlines {
    pub(crate) fn new(default_timeout: Option<Duration>) -> Self {
        Deadlines {
            default_timeout,
            ..Deadlines::default()
        }
    }

    /// A new checkout starts: overrides are forgotten, `deadline` (the
    /// checkout's, if any) bounds its commands.
    pub(crate) fn hand_out(&mut self, deadline: Option<Instant>) {
        *self = Deadlines {
            default_timeout: self.default_timeout,
            deadline: deadline.map(|d| (d, DeadlineSource::CheckoutDeadline)),
            ..Deadlines::default()
        };
    }

    pub(crate) fn set_checkout_timeout(&mut self, timeout: Option<Duration>) {
        self.checkout_timeout = Some(timeout);
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline.map(|d| (d, DeadlineSource::SetDeadline));
    }

    /// Swap the per-call timeout; returns the previous one.
    pub(crate) fn swap_call_timeout(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        std::mem::replace(&mut self.call_timeout, timeout)
    }

    /// The deadline of a command starting `now`, if any.
    pub(crate) fn bound(&self, now: Instant) -> Option<Bound> {
        let timeout = match (self.call_timeout, self.checkout_timeout) {
            (Some(t), _) => Some((t, DeadlineSource::CallTimeout)),
            (None, Some(t)) => t.map(|t| (t, DeadlineSource::CheckoutTimeout)),
            (None, None) => self
                .default_timeout
                .map(|t| (t, DeadlineSource::CommandTimeout)),
        };
        // `checked_add`: a huge timeout means "no bound", not a panic.
        let by_timeout = timeout.and_then(|(t, s)| Some((now.checked_add(t)?, s)));
        let (at, source) = match (by_timeout, self.deadline) {
            (Some(a), Some(b)) => {
                if b.0 <= a.0 {
                    b
                } else {
                    a
                }
            }
            (a, b) => a.or(b)?,
        };
        Some(Bound {
            at,
            source,
            started: now,
        })
    }
}

/// What happens to a connection whose command passed its deadline or was
/// cut.
pub(crate) struct Expiry<'a> {
    pub(crate) command: &'static str,
    pub(crate) connection_id: u32,
    /// The connection's flag: set, the probe says `Corrupt`.
    pub(crate) timed_out: &'a mut bool,
    /// The connection's flag for a cut command (same effect).
    pub(crate) cut: &'a mut bool,
    pub(crate) killer: Option<&'a Arc<Killer>>,
    /// The connection's watch (`None` outside a manager).
    pub(crate) watch: Option<&'a crate::watchdog::Watch>,
    /// The connection's switch (`abort.rs`).
    pub(crate) abort: Option<&'a Switch>,
    /// The command commits (`ambiguous.rs`): a lost answer makes its
    /// outcome unknown.
    pub(crate) commits: bool,
}

impl Expiry<'_> {
    /// The connection's switch flipped while the command ran: mark the
    /// connection, queue the kill, and say so.
    pub(crate) fn cut(self, switch: &Switch) -> CommandCut {
        *self.cut = true;
        if let Some(killer) = self.killer {
            killer.command_cut(self.connection_id);
        }
        let error = CommandCut {
            command: self.command,
            connection_id: self.connection_id,
            reason: switch.reason(),
            sent: true,
        };
        tracing::warn!(%error, "command cut");
        error
    }

    /// The command passed `bound`: mark the connection, queue the kill
    /// (never waits), and say so.
    pub(crate) fn expire(self, bound: Bound) -> CommandTimeout {
        *self.timed_out = true;
        if let Some(killer) = self.killer {
            killer.command_timed_out(self.connection_id);
        }
        let error = CommandTimeout {
            command: self.command,
            waited: bound.at.saturating_duration_since(bound.started),
            connection_id: self.connection_id,
            source: bound.source,
            sent: true,
        };
        tracing::warn!(%error, "command deadline passed");
        error
    }

    /// The deadline had passed before the command was sent: nothing to
    /// mark, nothing to kill.
    pub(crate) fn too_late(self, bound: Bound) -> CommandTimeout {
        CommandTimeout {
            command: self.command,
            waited: Duration::ZERO,
            connection_id: self.connection_id,
            source: bound.source,
            sent: false,
        }
    }
}

/// Completes when `bound` passes: through the connection's watch (no
/// timer of its own, `watchdog.rs`), or a timer for a connection made
/// outside a manager; never without a bound. The watch is disarmed when
/// the returned future is dropped.
pub(crate) async fn expired(bound: Option<Bound>, watch: Option<&crate::watchdog::Watch>) {
    match (bound, watch) {
        (Some(b), Some(w)) => w.until(b.at).await,
        (Some(b), None) => tokio::time::sleep_until(b.at).await,
        (None, _) => std::future::pending().await,
    }
}

/// Run `command` until `bound` (if any) or until the connection's switch
/// flips (if it has one); past the bound, `expiry` marks the connection and
/// the result is a [`CommandTimeout`]; after a flip, a [`CommandCut`]. A
/// committing command whose answer was lost fails with an
/// [`OutcomeUnknown`](crate::OutcomeUnknown).
///
/// # Cancel safety
///
/// Dropping the returned future drops `command`, like dropping the
/// command itself.
pub(crate) async fn run<T>(
    command: impl Future<Output = mysql_async::Result<T>>,
    bound: Option<Bound>,
    expiry: Expiry<'_>,
) -> mysql_async::Result<T> {
    let (name, id, commits, abort) = (
        expiry.command,
        expiry.connection_id,
        expiry.commits,
        expiry.abort,
    );
    let deadline = expired(bound, expiry.watch);
    let flipped = async {
        match abort {
            Some(switch) => switch.flipped().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        biased;
        result = command => result,
        () = deadline => match bound {
            Some(b) => Err(expiry.expire(b).into()),
            None => unreachable!("no deadline never fires"),
        },
        () = flipped => match abort {
            Some(switch) => Err(expiry.cut(switch).into()),
            None => unreachable!("no switch never flips"),
        },
    };
    match result {
        Err(e) if commits && ambiguous::answer_lost(&e) => Err(OutcomeUnknown::wrap(name, id, e)),
        other => other,
    }
}

/// The handle [`MySqlConn::with_timeout`] returns: the calls made through
/// it use its timeout; dropping it brings the previous setting back.
pub struct WithTimeout<'a> {
    pub(crate) conn: &'a mut MySqlConn,
    pub(crate) previous: Option<Duration>,
}

impl Deref for WithTimeout<'_> {
    type Target = MySqlConn;

    fn deref(&self) -> &MySqlConn {
        self.conn
    }
}

impl DerefMut for WithTimeout<'_> {
    fn deref_mut(&mut self) -> &mut MySqlConn {
        self.conn
    }
}

impl Drop for WithTimeout<'_> {
    fn drop(&mut self) {
        self.conn.deadlines.swap_call_timeout(self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn the_earliest_deadline_wins_and_says_where_it_came_from() {
        let now = Instant::now();
        let mut d = Deadlines::new(Some(30 * S));
        assert_eq!(d.bound(now).map(|b| b.at), Some(now + 30 * S));
        assert_eq!(
            d.bound(now).map(|b| b.source),
            Some(DeadlineSource::CommandTimeout)
        );

        d.hand_out(Some(now + 2 * S));
        let b = d.bound(now).unwrap();
        assert_eq!(
            (b.at, b.source),
            (now + 2 * S, DeadlineSource::CheckoutDeadline)
        );

        d.set_checkout_timeout(Some(S));
        let b = d.bound(now).unwrap();
        assert_eq!((b.at, b.source), (now + S, DeadlineSource::CheckoutTimeout));

        let before = d.swap_call_timeout(Some(S / 2));
        let b = d.bound(now).unwrap();
        assert_eq!((b.at, b.source), (now + S / 2, DeadlineSource::CallTimeout));
        d.swap_call_timeout(before);

        d.set_deadline(Some(now + S / 4));
        let b = d.bound(now).unwrap();
        assert_eq!((b.at, b.source), (now + S / 4, DeadlineSource::SetDeadline));

        // A long per-call timeout does not extend past the checkout's deadline.
        d.set_deadline(None);
        d.set_checkout_timeout(None);
        assert!(d.bound(now).is_none(), "both bounds turned off");

        // The next checkout forgets the overrides.
        d.hand_out(None);
        assert_eq!(
            d.bound(now).map(|b| b.source),
            Some(DeadlineSource::CommandTimeout)
        );
        assert!(Deadlines::new(None).bound(now).is_none());
        d.set_deadline(Some(now));
        assert!(d.bound(now).unwrap().already_passed());
        assert!(!d.bound(now - S).unwrap().already_passed());
        assert!(Deadlines::new(Some(Duration::MAX)).bound(now).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_never_finishes_ends_at_its_deadline() {
        let start = Instant::now();
        let bound = Deadlines::new(Some(2 * S)).bound(start).unwrap();
        let mut timed_out = false;
        let expiry = Expiry {
            command: "query_drop",
            connection_id: 7,
            timed_out: &mut timed_out,
            cut: &mut false,
            killer: None,
            watch: None,
            abort: None,
            commits: false,
        };
        let err = run(
            std::future::pending::<mysql_async::Result<()>>(),
            Some(bound),
            expiry,
        )
        .await
        .unwrap_err();
        assert_eq!(Instant::now(), start + 2 * S, "on the paused clock");
        assert!(timed_out, "the connection is marked");
        let timeout = CommandTimeout::find(&err).expect("a CommandTimeout");
        assert_eq!(timeout.connection_id, 7);
        let text = err.to_string();
        assert!(
            text.contains("query_drop")
                && text.contains("connection 7")
                && text.contains("2000 ms"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_finishes_in_time_is_untouched() {
        let bound = Deadlines::new(Some(2 * S)).bound(Instant::now()).unwrap();
        let mut timed_out = false;
        let expiry = Expiry {
            command: "query_first",
            connection_id: 7,
            timed_out: &mut timed_out,
            cut: &mut false,
            killer: None,
            watch: None,
            abort: None,
            commits: false,
        };
        let work = async {
            tokio::time::sleep(S).await;
            Ok(5)
        };
        assert_eq!(run(work, Some(bound), expiry).await.unwrap(), 5);
        assert!(!timed_out);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flipped_switch_cuts_the_command_at_once() {
        let switch = crate::abort::Switch::root().child();
        let (mut timed_out, mut cut) = (false, false);
        let expiry = Expiry {
            command: "query_drop",
            connection_id: 9,
            timed_out: &mut timed_out,
            cut: &mut cut,
            killer: None,
            watch: None,
            abort: Some(&switch),
            commits: false,
        };
        let start = Instant::now();
        let flipper = switch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(S).await;
            flipper.flip(crate::CutReason::PoolClosed);
        });
        let err = run(
            std::future::pending::<mysql_async::Result<()>>(),
            None,
            expiry,
        )
        .await
        .unwrap_err();
        assert_eq!(Instant::now(), start + S, "when the switch flipped");
        assert!(cut && !timed_out);
        let c = crate::CommandCut::find(&err).expect("a CommandCut");
        assert!(c.sent && c.reason == crate::CutReason::PoolClosed);
        assert!(err.to_string().contains("pool was closed"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_past_its_deadline_is_ambiguous_and_still_a_timeout() {
        let bound = Deadlines::new(Some(S)).bound(Instant::now());
        let mut timed_out = false;
        let expiry = Expiry {
            command: "query_drop",
            connection_id: 3,
            timed_out: &mut timed_out,
            cut: &mut false,
            killer: None,
            watch: None,
            abort: None,
            commits: true,
        };
        let err = run(
            std::future::pending::<mysql_async::Result<()>>(),
            bound,
            expiry,
        )
        .await
        .unwrap_err();
        let unknown = crate::OutcomeUnknown::find(&err).expect("ambiguous");
        assert_eq!(unknown.connection_id, 3);
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert!(
            CommandTimeout::find(&err).is_some(),
            "still found as a timeout"
        );
        assert_eq!(
            crate::classify_error(&err),
            poolwarden::ErrorClass::Broken,
            "the cause's class"
        );
    }
}
