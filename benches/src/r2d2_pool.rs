//! r2d2, a synchronous pool, driven from tokio tasks.
//!
//! How it is called from async code (the choice that seemed fairest):
//! `try_get()` first, which never blocks; only when the pool has no idle
//! connection does the task wait in `get()` on the blocking thread pool
//! (`spawn_blocking`). So r2d2 pays the async adaptation only when it would
//! really block, and a waiting task never blocks a runtime worker (with
//! `block_in_place` or a bare `get()`, the holders of the 10 connections could
//! be starved of workers). The cost of this choice: waiting tasks pay a
//! blocking-pool hand-off, and a task that finds a connection idle takes it
//! ahead of those already waiting in `get()`.
//!
//! r2d2 defaults otherwise (`test_on_check_out` on: the no-op `is_valid` runs
//! at every checkout; `min_idle` = `max_size`, so `build` opens all of them),
//! except `connection_timeout`, cut from 30 s to 10 s to bound a stuck run.

use std::convert::Infallible;
use std::time::Duration;

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The no-op r2d2 manager.
#[derive(Debug, Default)]
pub struct NoopR2d2;

impl r2d2::ManageConnection for NoopR2d2 {
    type Connection = Conn;
    type Error = Infallible;

    fn connect(&self) -> Result<Conn, Infallible> {
        Ok(Conn::open())
    }

    fn is_valid(&self, _conn: &mut Conn) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

/// r2d2's pool of no-op connections.
#[derive(Debug, Clone)]
pub struct R2d2(pub r2d2::Pool<NoopR2d2>);

impl R2d2 {
    /// `try_get`, else a blocking `get` on the blocking thread pool.
    pub async fn get(&self) -> Result<r2d2::PooledConnection<NoopR2d2>, BenchError> {
        if let Some(conn) = self.0.try_get() {
            return Ok(conn);
        }
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || pool.get())
            .await
            .map_err(|e| format!("r2d2 spawn_blocking: {e}"))?
            .map_err(|e| format!("r2d2 get: {e}"))
    }
}

impl Contender for R2d2 {
    const NAME: &'static str = "r2d2";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        r2d2::Pool::builder()
            .max_size(max_size)
            .connection_timeout(Duration::from_secs(10))
            .build(NoopR2d2)
            .map(Self)
            .map_err(|e| format!("r2d2 build: {e}"))
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
        Some(u64::from(self.0.state().idle_connections))
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<r2d2::Pool<NoopR2d2>>(),
            guard: std::mem::size_of::<r2d2::PooledConnection<NoopR2d2>>(),
            get_future: std::mem::size_of_val(&self.get()),
        }
    }
}

/// r2d2 driven the naive way, for comparison only (not in the default set;
/// `--only r2d2-bip`): every `get()` inside `tokio::task::block_in_place`.
#[derive(Debug, Clone)]
pub struct R2d2BlockInPlace(pub R2d2);

impl R2d2BlockInPlace {
    /// `get()` inside `block_in_place`.
    pub fn get(&self) -> Result<r2d2::PooledConnection<NoopR2d2>, BenchError> {
        tokio::task::block_in_place(|| self.0 .0.get()).map_err(|e| format!("r2d2 get: {e}"))
    }
}

impl Contender for R2d2BlockInPlace {
    const NAME: &'static str = "r2d2-bip";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        R2d2::build(max_size).await.map(Self)
    }

    async fn checkout(&self, hold: bool) -> Result<(), BenchError> {
        let mut conn = self.get()?;
        conn.touch();
        if hold {
            tokio::task::yield_now().await;
        }
        drop(conn);
        Ok(())
    }

    async fn hold_all(&self, n: usize) -> Result<(), BenchError> {
        self.0.hold_all(n).await
    }

    async fn idle(&self) -> Option<u64> {
        self.0.idle().await
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            get_future: 0,
            ..self.0.sizes()
        }
    }
}
