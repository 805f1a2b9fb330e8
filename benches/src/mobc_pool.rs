//! mobc with its defaults except `max_idle`: mobc keeps only 2 idle
//! connections by default and *closes* the rest on return, which would turn a
//! pool of 10 into a connect per checkout. `max_idle` is set to `max_size` so
//! that it keeps its 10 like everyone else. Its default `health_check` is
//! left on (it calls the no-op `check` at every checkout).

use std::convert::Infallible;

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The no-op mobc manager.
#[derive(Debug, Default)]
pub struct NoopMobc;

#[mobc::async_trait]
impl mobc::Manager for NoopMobc {
    type Connection = Conn;
    type Error = Infallible;

    async fn connect(&self) -> Result<Conn, Infallible> {
        Ok(Conn::open())
    }

    async fn check(&self, conn: Conn) -> Result<Conn, Infallible> {
        Ok(conn)
    }
}

/// mobc's pool of no-op connections.
#[derive(Clone)]
pub struct Mobc(pub mobc::Pool<NoopMobc>);

impl std::fmt::Debug for Mobc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mobc")
    }
}

impl Contender for Mobc {
    const NAME: &'static str = "mobc";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        Ok(Self(
            mobc::Pool::builder()
                .max_open(u64::from(max_size))
                .max_idle(u64::from(max_size))
                .build(NoopMobc),
        ))
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
        // mobc returns connections from a spawned task: let them land.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok(())
    }

    async fn idle(&self) -> Option<u64> {
        Some(self.0.state().await.idle as u64)
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<mobc::Pool<NoopMobc>>(),
            guard: std::mem::size_of::<mobc::Connection<NoopMobc>>(),
            get_future: std::mem::size_of_val(&self.0.get()),
        }
    }
}
