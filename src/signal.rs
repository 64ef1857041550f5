//! `Signal`: a one-shot, shard-local notification (the shard's `stop`: stop accepting, and end
//! the TLS connections waiting for a request). Many tasks may wait on it; `fire` wakes them
//! all. Not `Send`: it never leaves its shard.
//!
//! Each `wait()` future holds one slot in the waker slab, refreshed when it is polled again and
//! removed when it is dropped, so the slab never holds more entries than live waiters. (Keying
//! entries by `Waker::will_wake` is not enough: the waker a runtime passes to `poll` may differ
//! in vtable from its clones, so an accept loop re-polled per connection grew the list by one
//! entry per accepted connection, and every poll scanned it.) A slab, not a list: every idle
//! TLS connection waits on the shard's stop signal (to end with close_notify at a drain), and
//! registering or leaving takes O(1) however many wait.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use futures_util::future::{select, Either};
use slab::Slab;

#[derive(Debug, Default)]
pub struct Signal {
    fired: Cell<bool>,
    /// One entry per live, pending `Wait`.
    wakers: RefCell<Slab<Waker>>,
}

impl Signal {
    pub fn fire(&self) {
        self.fired.set(true);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// `f`'s output, or `None` if the signal fires first (`f` is then dropped).
    pub async fn or_fired<F: Future>(&self, f: F) -> Option<F::Output> {
        match select(pin!(f), pin!(self.wait())).await {
            Either::Left((out, _)) => Some(out),
            Either::Right(_) => None,
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once `fire` has been called.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            signal: self,
            id: None,
        }
    }

    /// Waiters registered now (for tests).
    pub fn waiters(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// The future of `Signal::wait`.
#[derive(Debug)]
pub struct Wait<'a> {
    signal: &'a Signal,
    /// This waiter's key in the signal's slab, once polled (until the signal fires: `fire`
    /// empties the slab, and no waiter registers after).
    id: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.fired.get() {
            return Poll::Ready(());
        }
        let mut wakers = signal.wakers.borrow_mut();
        if let Some(w) = self.id.and_then(|id| wakers.get_mut(id)) {
            if !w.will_wake(cx.waker()) {
                w.clone_from(cx.waker());
            }
            return Poll::Pending;
        }
        let id = wakers.insert(cx.waker().clone());
        drop(wakers);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // After `fire` the key is gone with the slab it was in.
        if let (Some(id), false) = (self.id, self.signal.fired.get()) {
            self.signal.wakers.borrow_mut().try_remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn dropped_waiters_leave_the_list() {
        let s = Signal::default();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            let mut w = Box::pin(s.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert_eq!(s.waiters(), 1);
        }
        assert_eq!(s.waiters(), 0);
    }

    #[test]
    fn fire_wakes_every_waiter() {
        let s = Signal::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut a = Box::pin(s.wait());
        let mut b = Box::pin(s.wait());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        assert_eq!(s.waiters(), 2);
        s.fire();
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(b.as_mut().poll(&mut cx).is_ready());
        assert!(s.is_fired());
        assert_eq!(s.waiters(), 0);
    }
}
