//! The baseline: a `tokio::sync::Semaphore` plus a `parking_lot::Mutex<Vec<Conn>>`.
//!
//! Acquire a permit, pop a connection; on drop push it back, then release the
//! permit. No validation, no bookkeeping: the floor any pool pays.

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The baseline pool (always full: its connections are opened at build).
#[derive(Debug)]
pub struct Baseline {
    permits: Semaphore,
    conns: Mutex<Vec<Conn>>,
}

/// The baseline's guard.
#[derive(Debug)]
pub struct BaselineGuard<'a> {
    pool: &'a Baseline,
    conn: Option<Conn>,
    // Dropped after `Drop::drop` pushed the connection back.
    _permit: SemaphorePermit<'a>,
}

impl Baseline {
    /// A pool holding `size` open connections.
    pub fn new(size: usize) -> Self {
        Self {
            permits: Semaphore::new(size),
            conns: Mutex::new((0..size).map(|_| Conn::open()).collect()),
        }
    }

    /// Checks out a connection, waiting for a permit.
    pub async fn get(&self) -> Result<BaselineGuard<'_>, BenchError> {
        let permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let conn = self.conns.lock().pop();
        match conn {
            Some(conn) => Ok(BaselineGuard {
                pool: self,
                conn: Some(conn),
                _permit: permit,
            }),
            None => Err("baseline: a permit without a connection".to_owned()),
        }
    }
}

impl std::ops::Deref for BaselineGuard<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for BaselineGuard<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for BaselineGuard<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.conns.lock().push(conn);
        }
    }
}

impl Contender for Baseline {
    const NAME: &'static str = "baseline";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        Ok(Self::new(max_size as usize))
    }

    async fn checkout(&self, hold: bool) -> Result<(), BenchError> {
        let mut conn = self.get().await?;
        conn.touch();
        if hold {
            tokio::task::yield_now().await;
        }
        drop(conn);
        Ok(())
    }

    async fn hold_all(&self, n: usize) -> Result<(), BenchError> {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.get().await?);
        }
        drop(held);
        Ok(())
    }

    async fn idle(&self) -> Option<u64> {
        Some(self.conns.lock().len() as u64)
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<std::sync::Arc<Baseline>>(),
            guard: std::mem::size_of::<BaselineGuard<'static>>(),
            get_future: std::mem::size_of_val(&self.get()),
        }
    }
}
