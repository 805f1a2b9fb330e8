//! [`BoundedStream`]: a result-set stream that ends at its command's
//! deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mysql_async::prelude::{FromRow, Protocol};
use mysql_async::ResultSetStream;
use tokio::time::Sleep;

use crate::deadline::{Bound, Expiry};

/// The rows of a query's first result set, as returned by
/// [`MySqlConn::query_stream`](crate::MySqlConn::query_stream) and
/// [`MySqlConn::exec_stream`](crate::MySqlConn::exec_stream): mysql_async's
/// [`ResultSetStream`], bounded by the command's deadline until its last
/// row. Past the deadline it yields one
/// [`CommandTimeout`](crate::CommandTimeout) error and ends; the
/// connection is then discarded when it goes back to the pool.
pub struct BoundedStream<'a, T, P> {
    rows: ResultSetStream<'a, 'a, 'static, T, P>,
    /// The deadline's timer and what it bounds; `None` without a deadline
    /// or once it fired.
    deadline: Option<(Pin<Box<Sleep>>, Bound, Expiry<'a>)>,
    done: bool,
}

impl<'a, T, P> BoundedStream<'a, T, P> {
    pub(crate) fn new(
        rows: ResultSetStream<'a, 'a, 'static, T, P>,
        bound: Option<Bound>,
        expiry: Expiry<'a>,
    ) -> Self {
        BoundedStream {
            rows,
            deadline: bound.map(|b| (Box::pin(tokio::time::sleep_until(b.at)), b, expiry)),
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
            Some((sleep, _, _)) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if expired {
            if let Some((_, bound, expiry)) = this.deadline.take() {
                this.done = true;
                return Poll::Ready(Some(Err(expiry.expire(bound).into())));
            }
        }
        Poll::Pending
    }
}
