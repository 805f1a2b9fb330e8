//! The no-round-trip look at a connection: what mysql_async shows about the
//! protocol state and the last status the server sent, and the decision
//! built on it.
//!
//! What mysql_async 0.37 exposes (see `RESEARCH.md` for the code paths):
//!
//! * `Conn::is_disconnected()`: `Conn::routine` sets the flag before every
//!   command and clears it only when the command completed (or failed with a
//!   server error). Still set afterwards means the command's future was
//!   dropped mid-flight (cancelled) or the driver closed the socket after an
//!   I/O or protocol error (then the stream is gone).
//! * Unread results: `QueryResult::new(&mut conn).is_empty()` is `false` while
//!   a result set with columns is not read to its end or more result sets
//!   follow. (An unconsumed result of a statement without columns is
//!   harmless: no bytes wait on the wire, and mysql_async clears it without
//!   I/O before the next command.)
//! * `Conn::last_ok_packet()`: the status flags of the last OK/EOF packet
//!   (`SERVER_STATUS_IN_TRANS`, `SERVER_STATUS_AUTOCOMMIT`); `None` after an
//!   error packet. Garbage right after a prepare (mysql_async parses the
//!   prepare response as an OK packet), which is why the status is read
//!   through [`MySqlConn::session`](crate::MySqlConn) (see `StatusSource`
//!   in `track.rs`).
//! * Nothing public says whether the stream is gone or whether a server error
//!   from a later statement of a multi-statement query is still pending; both
//!   show in `Conn`'s `Debug` output, which is only rendered on those rare
//!   paths (after the disconnected flag or an error packet).
//! * No session-state tracking: mysql_async does not send
//!   `CLIENT_SESSION_TRACK`, so `SERVER_SESSION_STATE_CHANGED` never comes;
//!   the [`MySqlConn`](crate::MySqlConn) wrapper's dirty flag stands in.
//! * The server closing the socket while idle is not visible without I/O
//!   (mysql_async's own pool has a non-blocking EOF check, `Stream::check`,
//!   but it is `pub(crate)`); the pool's validation ping covers that (F1).

use mysql_async::consts::StatusFlags;
use mysql_async::{Conn, QueryResult, TextProtocol};
use poolwarden::Probe;

use crate::policy::ResetPolicy;

/// The protocol-level state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// At a command boundary with nothing unread.
    Idle,
    /// The driver closed the socket after an I/O or protocol error.
    Closed,
    /// Mid-protocol: a cancelled command, unread rows or result sets, or a
    /// server error of an unread result set waiting to surprise the next
    /// command.
    Corrupt,
}

/// What the last status the server sent says about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    /// Status flags of the last OK packet; `None` when the last command
    /// ended in an error packet (which carries no status).
    pub(crate) status: Option<StatusFlags>,
}

impl Session {
    /// Read from the connection.
    pub(crate) fn of(conn: &Conn) -> Session {
        Session {
            status: conn.last_ok_packet().map(|ok| ok.status_flags()),
        }
    }

    /// A transaction is open, or may be (the last status is unknown).
    pub(crate) fn transaction_may_be_open(&self) -> bool {
        self.status
            .is_none_or(|s| s.contains(StatusFlags::SERVER_STATUS_IN_TRANS))
    }

    /// The `autocommit` mode the server reported, if known.
    pub(crate) fn autocommit(&self) -> Option<bool> {
        self.status
            .map(|s| s.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT))
    }

    /// Something a `ROLLBACK` (plus restoring `autocommit`) must undo.
    pub(crate) fn needs_rollback(&self, baseline_autocommit: bool) -> bool {
        self.transaction_may_be_open() || self.autocommit() != Some(baseline_autocommit)
    }
}

/// What `Conn`'s `Debug` text shows once the driver dropped the socket.
///
/// A private format, read here because mysql_async 0.37 offers no public
/// signal for it. The test `driver_format::the_debug_text_the_probe_reads_is_unchanged`
/// pins it against a real server and fails loudly when a driver upgrade
/// changes it (see `docs/architecture.md`, "Reading mysql_async's Debug
/// text").
pub(crate) const CLOSED_MARKER: &str = "stream: None";

/// What `Conn`'s `Debug` text shows while a later statement's server error
/// is pending (same caveat as [`CLOSED_MARKER`]).
pub(crate) const PENDING_ERROR_MARKER: &str = "pending_result: Err(";

/// The protocol state of `conn`, without I/O.
pub(crate) fn wire(conn: &mut Conn) -> Wire {
    if conn.is_disconnected() {
        return match debug_text(conn) {
            Some(text) if text.contains(CLOSED_MARKER) => Wire::Closed,
            _ => Wire::Corrupt,
        };
    }
    if !QueryResult::<TextProtocol>::new(&mut *conn).is_empty() {
        return Wire::Corrupt;
    }
    if conn.last_ok_packet().is_none() {
        // After an error: a multi-statement query whose later statement
        // failed leaves that error pending, and the next command (the next
        // borrower's) would return it. Only `Debug` shows it.
        if debug_text(conn).is_none_or(|text| text.contains(PENDING_ERROR_MARKER)) {
            return Wire::Corrupt;
        }
    }
    Wire::Idle
}

/// `Conn`'s `Debug` rendering, or `None` if rendering panicked (mysql_async
/// unwraps its codec there). Holds the connection options: never log it.
fn debug_text(conn: &Conn) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format!("{conn:?}"))).ok()
}

/// Which probe the pool is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// Before a hand-out, and right after a reset ([`Manager::probe`]).
    ///
    /// [`Manager::probe`]: poolwarden::Manager::probe
    Checkout,
    /// When the borrower gives the connection back
    /// ([`Manager::probe_returned`]).
    ///
    /// [`Manager::probe_returned`]: poolwarden::Manager::probe_returned
    Return,
}

/// What the manager knows about the connection beyond the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// `autocommit` after connect and init SQL.
    pub(crate) baseline_autocommit: bool,
    /// A borrower ran something that may have changed session state.
    pub(crate) dirty: bool,
}

/// The probe's verdict, from what was observed and what the wrapper tracked.
pub(crate) fn decide(
    wire: Wire,
    session: Session,
    policy: ResetPolicy,
    known: Known,
    at: At,
) -> Probe {
    match wire {
        Wire::Closed => return Probe::Closed,
        Wire::Corrupt => return Probe::Corrupt,
        Wire::Idle => {}
    }
    let rollback = session.needs_rollback(known.baseline_autocommit);
    let needs_reset = match (policy, at) {
        (ResetPolicy::None, _) => false,
        (ResetPolicy::Rollback, _) => rollback,
        (ResetPolicy::Full, At::Return) => true,
        // At checkout (and after a reset) a dirty connection means some
        // borrower's state was never undone: never hand it out.
        (ResetPolicy::Full | ResetPolicy::Auto, _) => rollback || known.dirty,
    };
    if needs_reset {
        Probe::NeedsReset
    } else {
        Probe::Clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTOCOMMIT: StatusFlags = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
    const CLEAN: Known = Known {
        baseline_autocommit: true,
        dirty: false,
    };
    const DIRTY: Known = Known {
        baseline_autocommit: true,
        dirty: true,
    };
    const ALL: [ResetPolicy; 4] = [
        ResetPolicy::None,
        ResetPolicy::Rollback,
        ResetPolicy::Full,
        ResetPolicy::Auto,
    ];

    fn session(flags: Option<StatusFlags>) -> Session {
        Session { status: flags }
    }

    fn idle() -> Session {
        session(Some(AUTOCOMMIT))
    }

    fn in_trans() -> Session {
        session(Some(AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS))
    }

    #[test]
    fn protocol_damage_wins_over_every_policy() {
        for policy in ALL {
            for at in [At::Checkout, At::Return] {
                assert_eq!(
                    decide(Wire::Corrupt, idle(), policy, CLEAN, at),
                    Probe::Corrupt
                );
                assert_eq!(
                    decide(Wire::Closed, in_trans(), policy, DIRTY, at),
                    Probe::Closed
                );
            }
        }
    }

    #[test]
    fn policy_none_is_always_clean() {
        for at in [At::Checkout, At::Return] {
            assert_eq!(
                decide(Wire::Idle, in_trans(), ResetPolicy::None, DIRTY, at),
                Probe::Clean
            );
        }
    }

    #[test]
    fn policy_rollback_looks_at_the_status_only() {
        let p = ResetPolicy::Rollback;
        for at in [At::Checkout, At::Return] {
            assert_eq!(decide(Wire::Idle, idle(), p, CLEAN, at), Probe::Clean);
            assert_eq!(
                decide(Wire::Idle, idle(), p, DIRTY, at),
                Probe::Clean,
                "session state is this policy's documented blind spot"
            );
            assert_eq!(
                decide(Wire::Idle, in_trans(), p, CLEAN, at),
                Probe::NeedsReset
            );
            // The last command failed: a transaction may be open.
            assert_eq!(
                decide(Wire::Idle, session(None), p, CLEAN, at),
                Probe::NeedsReset
            );
            // `SET autocommit = 0` left behind.
            let off = session(Some(StatusFlags::empty()));
            assert_eq!(decide(Wire::Idle, off, p, CLEAN, at), Probe::NeedsReset);
            // ... unless that is how init SQL configured the session.
            let baseline_off = Known {
                baseline_autocommit: false,
                dirty: false,
            };
            assert_eq!(decide(Wire::Idle, off, p, baseline_off, at), Probe::Clean);
        }
    }

    #[test]
    fn policy_full_resets_every_return() {
        let p = ResetPolicy::Full;
        assert_eq!(
            decide(Wire::Idle, idle(), p, CLEAN, At::Return),
            Probe::NeedsReset
        );
        assert_eq!(
            decide(Wire::Idle, idle(), p, CLEAN, At::Checkout),
            Probe::Clean,
            "checkout and post-reset check of a clean connection"
        );
        assert_eq!(
            decide(Wire::Idle, in_trans(), p, CLEAN, At::Checkout),
            Probe::NeedsReset
        );
        assert_eq!(
            decide(Wire::Idle, idle(), p, DIRTY, At::Checkout),
            Probe::NeedsReset
        );
    }

    #[test]
    fn policy_auto_resets_only_what_needs_it() {
        let p = ResetPolicy::Auto;
        for at in [At::Checkout, At::Return] {
            assert_eq!(
                decide(Wire::Idle, idle(), p, CLEAN, at),
                Probe::Clean,
                "the free common case"
            );
            assert_eq!(decide(Wire::Idle, idle(), p, DIRTY, at), Probe::NeedsReset);
            assert_eq!(
                decide(Wire::Idle, in_trans(), p, CLEAN, at),
                Probe::NeedsReset
            );
            assert_eq!(
                decide(Wire::Idle, session(None), p, CLEAN, at),
                Probe::NeedsReset,
                "status unknown after an error"
            );
            assert_eq!(
                decide(
                    Wire::Idle,
                    session(Some(StatusFlags::empty())),
                    p,
                    CLEAN,
                    at
                ),
                Probe::NeedsReset,
                "autocommit changed"
            );
        }
    }
}

/// The private `Debug` format this module reads, pinned against a real
/// server: a driver upgrade that changes it fails here, by name, instead of
/// silently turning closed sockets into "corrupt" (no pool invalidation
/// after a server restart) or pending errors into "clean" (the next
/// borrower gets the previous one's error).
#[cfg(test)]
mod driver_format {
    use mysql_async::prelude::Queryable;
    use mysql_async::{Conn, Row};
    use poolwarden_testkit::MariaDb;

    use super::{debug_text, wire, Wire, CLOSED_MARKER, PENDING_ERROR_MARKER};

    const UPGRADE: &str = "mysql_async's private Debug format changed: \
        crates/poolwarden-mysql/src/probe.rs reads it to tell a closed socket \
        and a pending server error; update CLOSED_MARKER / PENDING_ERROR_MARKER \
        (or use a public signal if the new version has one) before upgrading";

    #[test]
    fn the_debug_text_the_probe_reads_is_unchanged() {
        let db = MariaDb::start().expect("a private MariaDB must start");
        let url = db.url();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            // The server closes the socket: the next command fails with an
            // I/O error and the driver drops its stream.
            let mut victim = Conn::from_url(url.as_str()).await.expect("connect");
            let id = victim.id();
            // Blocking, on this single-threaded runtime: nothing else runs.
            db.admin(&format!("KILL CONNECTION {id}")).expect("KILL");
            let _ = victim.query_drop("SELECT 1").await.unwrap_err();
            assert!(victim.is_disconnected());
            let text = debug_text(&victim).expect("Debug renders");
            assert!(text.contains(CLOSED_MARKER), "{UPGRADE} (closed socket)");
            assert_eq!(wire(&mut victim), Wire::Closed, "{UPGRADE}");

            // A later statement's error left pending.
            let mut conn = Conn::from_url(url.as_str()).await.expect("connect");
            let mut result = conn
                .query_iter("SELECT 1; SELECT no_such_column")
                .await
                .expect("the first statement runs");
            let _: Vec<Row> = result.collect().await.expect("the first result set");
            drop(result);
            let text = debug_text(&conn).expect("Debug renders");
            assert!(
                text.contains(PENDING_ERROR_MARKER),
                "{UPGRADE} (pending error)"
            );
            assert_eq!(wire(&mut conn), Wire::Corrupt, "{UPGRADE}");

            // And neither marker on a healthy connection.
            let mut ok = Conn::from_url(url.as_str()).await.expect("connect");
            ok.query_drop("SELECT 1").await.expect("a query");
            let text = debug_text(&ok).expect("Debug renders");
            assert!(!text.contains(CLOSED_MARKER) && !text.contains(PENDING_ERROR_MARKER));
            assert_eq!(wire(&mut ok), Wire::Idle);
        });
    }
}
