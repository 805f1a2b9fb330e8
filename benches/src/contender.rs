//! The one interface the runner drives every pool through.

use std::future::Future;

/// An error from a contender, already turned into text.
pub type BenchError = String;

/// A pool under test, with a fixed `max_size` and the no-op connection.
///
/// `checkout` is the measured operation: get a connection, touch it,
/// optionally hold it across one `yield_now().await`, then drop the guard
/// (which returns the connection the way that pool returns it).
pub trait Contender: Sized + Send + Sync + 'static {
    /// The label used in tables.
    const NAME: &'static str;

    /// Builds the pool with `max_size` connections at most. Called inside the
    /// benchmark's tokio runtime (on the `block_on` thread).
    fn build(max_size: u32) -> impl Future<Output = Result<Self, BenchError>> + Send;

    /// One benchmark operation: checkout, touch, optionally hold the guard
    /// across `tokio::task::yield_now().await`, drop.
    fn checkout(&self, hold: bool) -> impl Future<Output = Result<(), BenchError>> + Send;

    /// Checks out `n` connections at once (forcing the pool to open them if it
    /// has fewer), then returns them all: the warm start.
    fn hold_all(&self, n: usize) -> impl Future<Output = Result<(), BenchError>> + Send;

    /// Idle connections according to the pool itself, if it tells.
    fn idle(&self) -> impl Future<Output = Option<u64>> + Send;

    /// Stack sizes of the pool's public types, in bytes.
    fn sizes(&self) -> Sizes;
}

/// `std::mem::size_of` of what a user of the pool holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    /// The pool handle (what is cloned into tasks).
    pub handle: usize,
    /// The checkout guard.
    pub guard: usize,
    /// The not-yet-polled future returned by the pool's `get()` (what a
    /// waiting checkout keeps in its task).
    pub get_future: usize,
}
