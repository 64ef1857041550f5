//! `Signal`: a one-shot, shard-local notification ("stop accepting"). Many tasks may wait on it;
//! `fire` wakes them all. Not `Send`: it never leaves its shard.
//!
//! Each `wait()` future holds one slot in the waker list, refreshed when it is polled again and
//! removed when it is dropped, so the list never holds more entries than live waiters. (Keying
//! entries by `Waker::will_wake` is not enough: the waker a runtime passes to `poll` may differ
//! in vtable from its clones, so an accept loop re-polled per connection grew the list by one
//! entry per accepted connection, and every poll scanned it.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Signal {
    fired: Cell<bool>,
    /// Id of the next `Wait` that registers.
    next: Cell<u64>,
    /// One entry per live, pending `Wait`.
    wakers: RefCell<Vec<(u64, Waker)>>,
}

impl Signal {
    pub fn fire(&self) {
        self.fired.set(true);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, w) in wakers {
            w.wake();
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
    /// This waiter's entry in the signal's list, once polled.
    id: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.fired.get() {
            return Poll::Ready(());
        }
        let mut wakers = signal.wakers.borrow_mut();
        if let Some(id) = self.id {
            if let Some((_, w)) = wakers.iter_mut().find(|(i, _)| *i == id) {
                if !w.will_wake(cx.waker()) {
                    w.clone_from(cx.waker());
                }
                return Poll::Pending;
            }
        }
        let id = signal.next.get();
        signal.next.set(id + 1);
        wakers.push((id, cx.waker().clone()));
        drop(wakers);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut wakers = self.signal.wakers.borrow_mut();
            if let Some(i) = wakers.iter().position(|(w, _)| *w == id) {
                wakers.swap_remove(i);
            }
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
