//! The floors the pools are measured against: the minimal pool (one
//! shared FIFO queue, no checks) and dedicated connections (no pool).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::real::contenders::{run_query, BoxFut, Contender, OpError, Query};

// ---- the floor of a shared-queue pool ----

pub(crate) struct Minimal<C> {
    permits: tokio::sync::Semaphore,
    conns: parking_lot::Mutex<Vec<C>>,
}

impl<C> Minimal<C> {
    pub(crate) fn new(conns: Vec<C>) -> Self {
        Minimal {
            permits: tokio::sync::Semaphore::new(conns.len()),
            conns: parking_lot::Mutex::new(conns),
        }
    }
}

/// Closes a connection of a [`Minimal`] pool, bounded.
pub(crate) trait Disconnect: Queryable + Send + 'static {
    fn disconnect(self) -> BoxFut<'static, ()>;
}

impl Disconnect for Conn {
    fn disconnect(self) -> BoxFut<'static, ()> {
        Box::pin(async move {
            let _ = Conn::disconnect(self).await;
        })
    }
}

impl Disconnect for poolwarden_mysql::MySqlConn {
    fn disconnect(self) -> BoxFut<'static, ()> {
        Box::pin(async move { drop(self) })
    }
}

impl<C: Disconnect> Contender for Minimal<C> {
    fn op(&self, _task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let t0 = Instant::now();
            let permit = self.permits.acquire().await.map_err(OpError::checkout)?;
            let wait = t0.elapsed();
            let popped = self.conns.lock().pop();
            let mut conn =
                popped.ok_or_else(|| OpError::checkout("a permit without a connection"))?;
            let result = run_query(&mut conn, q).await;
            // NOTE: push before the permit is released (it drops last), so
            // the next permit always finds a connection.
            self.conns.lock().push(conn);
            drop(permit);
            result.map(|()| wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.permits.close();
            let conns = std::mem::take(&mut *self.conns.lock());
            for c in conns {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), Disconnect::disconnect(c)).await;
            }
        })
    }
}

// ---- the no-pool limit ----

pub(crate) struct Dedicated {
    pub(crate) conns: Vec<tokio::sync::Mutex<Option<Conn>>>,
}

impl Contender for Dedicated {
    fn op(&self, task: usize, q: Query) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move {
            let slot = &self.conns[task % self.conns.len()];
            let t0 = Instant::now();
            let mut guard = slot.lock().await;
            let wait = t0.elapsed();
            let conn = guard
                .as_mut()
                .ok_or_else(|| OpError::checkout("connection closed"))?;
            run_query(conn, q).await?;
            Ok(wait)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            for slot in &self.conns {
                let conn = slot.lock().await.take();
                if let Some(c) = conn {
                    let _ = tokio::time::timeout(Duration::from_secs(5), c.disconnect()).await;
                }
            }
        })
    }
}
