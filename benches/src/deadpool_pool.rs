//! deadpool's managed pool, defaults (`RecyclingMethod` is the manager's own
//! no-op `recycle`), `max_size` set, no timeouts (none are set by default).

use std::convert::Infallible;

use deadpool::managed::{self, Metrics, RecycleResult};

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The no-op deadpool manager: `create` and `recycle` are instant.
#[derive(Debug, Default)]
pub struct NoopDeadpool;

impl managed::Manager for NoopDeadpool {
    type Type = Conn;
    type Error = Infallible;

    async fn create(&self) -> Result<Conn, Infallible> {
        Ok(Conn::open())
    }

    async fn recycle(&self, _conn: &mut Conn, _metrics: &Metrics) -> RecycleResult<Infallible> {
        Ok(())
    }
}

/// deadpool's pool of no-op connections.
#[derive(Debug, Clone)]
pub struct Deadpool(pub managed::Pool<NoopDeadpool>);

impl Contender for Deadpool {
    const NAME: &'static str = "deadpool";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        managed::Pool::builder(NoopDeadpool)
            .max_size(max_size as usize)
            .build()
            .map(Self)
            .map_err(|e| format!("deadpool build: {e}"))
    }

    async fn checkout(&self, hold: bool) -> Result<(), BenchError> {
        let mut conn = self.0.get().await.map_err(|e| format!("{e:?}"))?;
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
            held.push(self.0.get().await.map_err(|e| format!("{e:?}"))?);
        }
        drop(held);
        Ok(())
    }

    async fn idle(&self) -> Option<u64> {
        Some(self.0.status().available as u64)
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<managed::Pool<NoopDeadpool>>(),
            guard: std::mem::size_of::<managed::Object<NoopDeadpool>>(),
            get_future: std::mem::size_of_val(&self.0.get()),
        }
    }
}
