//! The [`Manager`] trait: everything the pool needs to know about one kind of
//! database connection, and nothing more.

use std::future::Future;
use std::time::Duration;

/// How the pool must treat an error seen on a connection or while connecting.
///
/// Database managers map their driver's error codes onto these classes in
/// [`Manager::classify`]; the pool never inspects error codes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The server went away (restart, failover, shutdown, network cut).
    ///
    /// The connection is discarded and every connection opened before this
    /// moment is retired lazily, at its next checkout or return (F2).
    Disconnect,
    /// This one connection is unusable (killed, protocol out of sync), but
    /// there is no reason to suspect the others: discard it alone (F3, F5).
    Broken,
    /// The connection was misused by the application (for example MySQL 2014
    /// "commands out of sync" after an interleaved command). It is discarded
    /// like [`ErrorClass::Broken`] and logged loudly, because the bug is in
    /// the caller, not in the server.
    Usage,
    /// Retrying will not help: bad credentials, unknown database, TLS
    /// misconfiguration (F11). Waiting checkouts fail at once with this error
    /// and new connects are attempted only every `fatal_retry_interval`.
    Fatal,
    /// The server did not answer within a deadline while its socket stayed
    /// open (a frozen server, a black-holed route, a hung proxy). The
    /// connection is discarded (its protocol state is unknown), and the pool
    /// treats the server as not answering ("black hole"): waiting checkouts
    /// fail fast with this error, connections handed out before it are
    /// retired at return, and one successful round trip (connect or
    /// validation) clears it. A checkout that begins after the event is not
    /// failed with it at once: it waits up to `validation_timeout` for a
    /// round trip of its own (a connect), so it is served as soon as the
    /// server is back, and fails with this class if it is not.
    ///
    /// The pool produces this class itself when a validation ping outlives
    /// `validation_timeout`; managers return it from
    /// [`classify`](Manager::classify) for their own command deadlines.
    Unresponsive,
    /// An ordinary error (syntax error, deadlock, lock wait timeout, refused
    /// connection that may succeed later). The connection, if any, is kept.
    Keep,
}

/// What a cheap, synchronous look at a connection found.
///
/// Returned by [`Manager::probe`], which must not do a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Probe {
    /// Idle at a command boundary and no session state to undo: it can be
    /// handed out again with no round trip.
    Clean,
    /// Usable, but the borrower left state behind (an open transaction,
    /// session variables, temporary tables, locks): run [`Manager::reset`]
    /// before anyone else gets it (F13).
    NeedsReset,
    /// The socket was closed by the server or the peer (F1, F2, F3).
    Closed,
    /// The connection is mid-protocol: a command was cancelled while in
    /// flight, a result set was left unread, or it was held by a panicking
    /// thread. It can never be handed out again (F5).
    Corrupt,
}

/// Facts a manager learned about the server when a connection opened.
///
/// The pool keeps its timers below `server_idle_timeout` so that it never
/// hands out a connection the server has already closed (F1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionFacts {
    /// The server closes a session idle for this long (MySQL/MariaDB
    /// `wait_timeout`, Postgres `idle_session_timeout`). `None` when unknown
    /// or disabled.
    pub server_idle_timeout: Option<Duration>,
    /// The server's version string, for diagnostics.
    pub server_version: Option<String>,
    /// The server's connection limit (`max_connections`), for diagnostics.
    pub max_connections: Option<u32>,
}

impl ConnectionFacts {
    /// Facts with only the server's idle timeout known.
    pub fn with_idle_timeout(timeout: Option<Duration>) -> Self {
        Self {
            server_idle_timeout: timeout,
            ..Self::default()
        }
    }
}

/// Opens, checks, resets and classifies connections of one kind.
///
/// The pool calls these methods; it never calls them concurrently on the same
/// connection. Every async method is bounded by the pool with its own timeout
/// (`connect_timeout`, `validation_timeout`, `reset_timeout`) and by the
/// caller's checkout timeout, so an implementation may simply `await` its
/// driver: a hung server cannot hang the pool (F10). The futures may be
/// dropped at any await point when a timeout fires; a connection whose
/// future was dropped is discarded by the pool, never reused.
pub trait Manager: Send + Sync + 'static {
    /// The connection type handed out by the pool.
    type Connection: Send + 'static;
    /// The driver's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Open a new connection, run any init statements, and return it.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// A round trip that proves the connection works (a ping).
    ///
    /// Called at checkout when the connection has been idle longer than the
    /// bypass window, and by keepalive.
    fn validate(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A cheap, synchronous look at the connection: no round trip, no
    /// blocking. Called on every return and before every hand-out.
    ///
    /// This is how a cancelled query, an unread result set or an open
    /// transaction is noticed (F5, F13). A ping is not a substitute: it can
    /// consume a stale reply and report a corrupted connection healthy.
    fn probe(&self, conn: &mut Self::Connection) -> Probe;

    /// The probe the pool runs when a borrower returns a connection; it
    /// decides between straight back to idle ([`Probe::Clean`]), a reset
    /// first ([`Probe::NeedsReset`]), or closing it.
    ///
    /// The default is [`probe`](Manager::probe). A manager whose driver
    /// cannot tell whether the borrower changed session state answers
    /// [`Probe::NeedsReset`] here for every returned connection (safe, at
    /// the cost of a reset per checkout), while its plain `probe` (at
    /// checkout and after a reset) still answers `Clean`.
    fn probe_returned(&self, conn: &mut Self::Connection) -> Probe {
        self.probe(conn)
    }

    /// Undo the borrower's session state so the next borrower starts clean
    /// (F13). Called off the caller's path, after [`Probe::NeedsReset`].
    ///
    /// The default does nothing.
    fn reset(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        std::future::ready(Ok(()))
    }

    /// Classify an error from [`connect`](Manager::connect),
    /// [`validate`](Manager::validate), [`reset`](Manager::reset) or the
    /// application's own use of a connection.
    fn classify(&self, error: &Self::Error) -> ErrorClass;

    /// Called right before a connection is handed to a borrower, with the
    /// deadline the checkout carries for the borrower's commands
    /// ([`Pool::get_until`](crate::Pool::get_until)), or `None`.
    ///
    /// Synchronous and without I/O: a manager stores the deadline where its
    /// command wrappers read it. The default does nothing.
    fn on_hand_out(&self, conn: &mut Self::Connection, deadline: Option<tokio::time::Instant>) {
        let _ = (conn, deadline);
    }

    /// Called once, when the pool is built, with the handle through which
    /// the manager tells the pool what it learns about the server outside
    /// the pool's calls ([`ServerSignal::unresponsive`]: a command deadline
    /// passed and a side connection got no answer either). Synchronous and
    /// without I/O: store the handle. The default drops it.
    ///
    /// [`ServerSignal::unresponsive`]: crate::ServerSignal::unresponsive
    fn attach(&self, signal: crate::ServerSignal) {
        let _ = signal;
    }

    /// Called by [`Pool::close`](crate::Pool::close) when `close_timeout`
    /// has passed and connections are still checked out: cut the commands
    /// in flight on them (and refuse new ones), each failing with an error
    /// that says the pool closed, so their borrowers return them. The
    /// manager owns its connections' commands; the pool cannot cut them.
    /// Synchronous and without I/O. The default does nothing (the pool then
    /// closes those connections whenever they come back).
    fn cut_in_flight(&self) {}

    /// Facts about the server learned when `conn` was opened.
    ///
    /// The default knows nothing.
    fn facts(&self, conn: &Self::Connection) -> ConnectionFacts {
        let _ = conn;
        ConnectionFacts::default()
    }
}
