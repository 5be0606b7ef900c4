//! A one-shot stop signal that any number of tasks can wait on.

use std::future::Future;

use tokio::sync::watch;

/// Fires once; every `cancelled()` future then completes, including ones
/// made after it fired.
#[derive(Debug)]
pub(crate) struct Cancel(watch::Sender<bool>);

impl Cancel {
    pub(crate) fn new() -> Self {
        Self(watch::channel(false).0)
    }

    pub(crate) fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Completes once `cancel` was called (or the `Cancel` is dropped).
    pub(crate) fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }
}
