//! bb8 0.9 with its defaults (FIFO wait queue, `test_on_check_out` on, which
//! calls the no-op `is_valid`), `max_size` set. Uses the borrowing `get()`.

use std::convert::Infallible;

use crate::conn::Conn;
use crate::contender::{BenchError, Contender, Sizes};

/// The no-op bb8 manager.
#[derive(Debug, Default)]
pub struct NoopBb8;

impl bb8::ManageConnection for NoopBb8 {
    type Connection = Conn;
    type Error = Infallible;

    async fn connect(&self) -> Result<Conn, Infallible> {
        Ok(Conn::open())
    }

    async fn is_valid(&self, _conn: &mut Conn) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

/// bb8's pool of no-op connections.
#[derive(Debug, Clone)]
pub struct Bb8(pub bb8::Pool<NoopBb8>);

impl Contender for Bb8 {
    const NAME: &'static str = "bb8";

    async fn build(max_size: u32) -> Result<Self, BenchError> {
        bb8::Pool::builder()
            .max_size(max_size)
            .build(NoopBb8)
            .await
            .map(Self)
            .map_err(|e| format!("bb8 build: {e:?}"))
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
        Some(u64::from(self.0.state().idle_connections))
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            handle: std::mem::size_of::<bb8::Pool<NoopBb8>>(),
            guard: std::mem::size_of::<bb8::PooledConnection<'static, NoopBb8>>(),
            get_future: std::mem::size_of_val(&self.0.get()),
        }
    }
}
