//! poolwarden with its defaults (leak tracking on, LIFO idle order,
//! validation bypass window 500 ms), `max_size` set.

use std::convert::Infallible;

use poolwarden::{ErrorClass, Manager, Pool, Probe};

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The no-op manager: connect, validate and reset are instant; probe says
/// [`Probe::Clean`].
#[derive(Debug, Default)]
pub struct Noop;

impl Manager for Noop {
    type Connection = Conn;
    type Error = Infallible;

    async fn connect(&self) -> Result<Conn, Infallible> {
        Ok(Conn::open())
    }

    async fn validate(&self, _conn: &mut Conn) -> Result<(), Infallible> {
        Ok(())
    }

    fn probe(&self, _conn: &mut Conn) -> Probe {
        Probe::Clean
    }

    async fn reset(&self, _conn: &mut Conn) -> Result<(), Infallible> {
        Ok(())
    }

    fn classify(&self, error: &Infallible) -> ErrorClass {
        match *error {}
    }
}

/// poolwarden's pool of no-op connections.
#[derive(Debug, Clone)]
pub struct Poolwarden(pub Pool<Noop>);

impl Contender for Poolwarden {
    const NAME: &'static str = "poolwarden";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        Pool::builder(Noop)
            .max_size(max_size)
            .build()
            .map(Self)
            .map_err(|e| format!("poolwarden build: {e}"))
    }

    async fn checkout(&self, hold: bool) -> Result<(), BenchError> {
        let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
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
            held.push(self.0.get().await.map_err(|e| e.to_string())?);
        }
        drop(held);
        Ok(())
    }

    async fn idle(&self) -> Option<u64> {
        Some(u64::from(self.0.status().idle))
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<Pool<Noop>>(),
            guard: std::mem::size_of::<poolwarden::PooledConnection<Noop>>(),
            get_future: std::mem::size_of_val(&self.0.get()),
        }
    }
}
