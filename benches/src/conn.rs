//! The connection every contender hands out: a small struct, opened instantly.

use std::sync::atomic::{AtomicU64, Ordering};

/// A fake connection: 16 bytes, no heap, nothing to do.
#[derive(Debug)]
pub struct Conn {
    /// Which connection this is (unique per process).
    pub id: u64,
    /// How many times it was checked out (touched by every benchmark op).
    pub uses: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Conn {
    /// Opens a new fake connection.
    pub fn open() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            uses: 0,
        }
    }

    /// What the benchmark does with a checked-out connection: write to it,
    /// and keep the optimizer from dropping the access.
    #[inline]
    pub fn touch(&mut self) {
        self.uses = self.uses.wrapping_add(1);
        std::hint::black_box(&*self);
    }
}
