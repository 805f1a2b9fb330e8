//! Noticing a request-scoped guard used from another task: the mistake of
//! the post-mortem (a request's connection moved into background work).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The tokio task a request-scoped guard was created in.
#[derive(Debug)]
pub(crate) struct Home {
    task: Option<tokio::task::Id>,
    warned: AtomicBool,
}

impl Home {
    /// The current task.
    pub(crate) fn here() -> Self {
        Home {
            task: tokio::task::try_id(),
            warned: AtomicBool::new(false),
        }
    }

    /// Warn (once) when called from a task other than the home task.
    pub(crate) fn check(&self, what: &'static str, label: impl FnOnce() -> String) {
        if self.warned.load(Relaxed) || tokio::task::try_id() == self.task {
            return;
        }
        if !self.warned.swap(true, Relaxed) {
            tracing::warn!(
                guard = what,
                label = %label(),
                "a request-scoped connection is used from another task than its request's \
                 (was it moved into a spawned task?); it stays checked out until that task \
                 drops it. Spawned work should check out its own connection with \
                 RequestContext::spawn / RequestContext::get"
            );
        }
    }
}
