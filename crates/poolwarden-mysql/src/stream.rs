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
    deadline: Option<(Timer, Bound, Expiry<'a>)>,
    done: bool,
}

/// What tells a stream its deadline passed: the connection's watch, armed
/// for the stream's life (`watchdog.rs`), or a timer of its own for a
/// connection made outside a manager.
enum Timer {
    Watch,
    Sleep(Pin<Box<Sleep>>),
}

impl<'a, T, P> BoundedStream<'a, T, P> {
    pub(crate) fn new(
        rows: ResultSetStream<'a, 'a, 'static, T, P>,
        bound: Option<Bound>,
        expiry: Expiry<'a>,
    ) -> Self {
        let deadline = bound.map(|b| {
            let timer = match expiry.watch {
                Some(watch) => {
                    watch.arm(b.at);
                    Timer::Watch
                }
                None => Timer::Sleep(Box::pin(tokio::time::sleep_until(b.at))),
            };
            (timer, b, expiry)
        });
        BoundedStream {
            rows,
            deadline,
            done: false,
        }
    }

    /// The stream ended (last row, error or deadline): stop watching.
    fn finish(&mut self) {
        self.done = true;
        if let Some((Timer::Watch, _, expiry)) = &self.deadline {
            if let Some(watch) = expiry.watch {
                watch.disarm();
            }
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
            if item.is_none() {
                this.finish();
            }
            return Poll::Ready(item);
        }
        let expired = match &mut this.deadline {
            Some((Timer::Sleep(sleep), _, _)) => sleep.as_mut().poll(cx).is_ready(),
            Some((Timer::Watch, _, expiry)) => expiry.watch.is_some_and(|w| w.poll_fired(cx)),
            None => false,
        };
        if expired {
            this.finish();
            if let Some((_, bound, expiry)) = this.deadline.take() {
                return Poll::Ready(Some(Err(expiry.expire(bound).into())));
            }
        }
        Poll::Pending
    }
}

impl<T, P> Drop for BoundedStream<'_, T, P> {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}
