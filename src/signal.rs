//! `Signal`: a one-shot, shard-local notification ("stop accepting"). Many tasks may wait on it;
//! `fire` wakes them all. Not `Send`: it never leaves its shard.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Debug, Default)]
pub struct Signal {
    fired: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub fn fire(&self) {
        self.fired.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once `fire` has been called.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            let mut wakers = self.wakers.borrow_mut();
            // A waiting task re-polls with the same waker; keep one entry per task.
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
