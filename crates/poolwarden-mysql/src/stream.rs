//! [`BoundedStream`]: a result-set stream that ends at its command's
//! deadline, or when its connection's switch flips (`abort.rs`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mysql_async::prelude::{FromRow, Protocol};
use mysql_async::ResultSetStream;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::deadline::{Bound, Expiry};

/// The rows of a query's first result set, as returned by
/// [`MySqlConn::query_stream`](crate::MySqlConn::query_stream) and
/// [`MySqlConn::exec_stream`](crate::MySqlConn::exec_stream): mysql_async's
/// [`ResultSetStream`], bounded by the command's deadline until its last
/// row. Past the deadline it yields one
/// [`CommandTimeout`](crate::CommandTimeout) error and ends (a
/// [`CommandCut`](crate::CommandCut) when the pool closes or the cluster
/// node is marked down meanwhile); the connection is then discarded when it
/// goes back to the pool.
pub struct BoundedStream<'a, T, P> {
    rows: ResultSetStream<'a, 'a, 'static, T, P>,
    /// The deadline's timer and what it bounds; `None` without a deadline.
    deadline: Option<(Pin<Box<Sleep>>, Bound)>,
    /// Completes when the connection's switch flips; `None` without one.
    flipped: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Taken when the stream ends early.
    expiry: Option<Expiry<'a>>,
    done: bool,
}

impl<'a, T, P> BoundedStream<'a, T, P> {
    pub(crate) fn new(
        rows: ResultSetStream<'a, 'a, 'static, T, P>,
        bound: Option<Bound>,
        flipped: Option<WaitForCancellationFutureOwned>,
        expiry: Expiry<'a>,
    ) -> Self {
        BoundedStream {
            rows,
            deadline: bound.map(|b| (Box::pin(tokio::time::sleep_until(b.at)), b)),
            flipped: flipped.map(Box::pin),
            expiry: Some(expiry),
            done: false,
        }
    }

    /// The driver's stream (for `last_insert_id()`, `columns()`, ...).
    pub fn get_ref(&self) -> &ResultSetStream<'a, 'a, 'static, T, P> {
        &self.rows
    }
}

impl<T, P> Stream for BoundedStream<'_, T, P>
where
    P: Protocol + Unpin,
    T: FromRow + Unpin + Send + 'static,
{
    type Item = mysql_async::Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.rows).poll_next(cx) {
            this.done = item.is_none();
            return Poll::Ready(item);
        }
        let expired = match &mut this.deadline {
            Some((sleep, bound)) => sleep.as_mut().poll(cx).is_ready().then_some(*bound),
            None => None,
        };
        let flipped = match &mut this.flipped {
            Some(f) => f.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if expired.is_none() && !flipped {
            return Poll::Pending;
        }
        let Some(expiry) = this.expiry.take() else {
            return Poll::Pending; // unreachable: `done` is set below
        };
        this.done = true;
        let error = match (expired, expiry.abort) {
            (Some(bound), _) => expiry.expire(bound).into(),
            (None, Some(switch)) => expiry.cut(switch).into(),
            (None, None) => return Poll::Ready(None), // no switch never flips
        };
        Poll::Ready(Some(Err(error)))
    }
}
