//! Request coalescing on one shard: the first miss for a key becomes the *leader* and goes to
//! the origin; later misses for the same key wait (bounded in number and time) for the
//! leader's answer to be stored, then look the cache up again. No lock: a shard's tasks share
//! the table through `Rc`, and a waiter is woken by the leader's guard when it drops (answer
//! stored, not storable, failed, or the leader's task panicked).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::store::IdentityHasher;

/// Requests that may wait on one leader; more go to the origin themselves.
pub const WAITERS_MAX: usize = 4096;

/// One fill in progress.
#[derive(Debug, Default)]
pub struct Gate {
    open: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Gate {
    /// Resolves when the leader is done. Never holds a borrow across a suspension.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.open.get() {
                return Poll::Ready(());
            }
            let mut w = self.wakers.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    fn release(&self) {
        self.open.set(true);
        for w in self.wakers.take() {
            w.wake();
        }
    }
}

/// A fill's gate and how many requests wait on it, by key hash.
type FillMap = HashMap<u64, (Rc<Gate>, usize), BuildHasherDefault<IdentityHasher>>;

/// The fills in progress on a shard, by key hash.
#[derive(Debug, Default)]
pub struct Fills {
    map: RefCell<FillMap>,
}

/// What a miss does about coalescing.
pub enum Role {
    /// Go to the origin and store the answer; waiters are released when this drops.
    Lead(Lead),
    /// Another request is fetching this key: wait on it.
    Wait(Rc<Gate>),
    /// Too many waiters already: go to the origin without waiting.
    Alone,
}

impl Fills {
    pub fn join(self: &Rc<Self>, hash: u64) -> Role {
        let mut map = self.map.borrow_mut();
        match map.get_mut(&hash) {
            Some((gate, waiters)) if *waiters < WAITERS_MAX => {
                *waiters += 1;
                Role::Wait(gate.clone())
            }
            Some(_) => Role::Alone,
            None => {
                map.insert(hash, (Rc::new(Gate::default()), 0));
                Role::Lead(Lead {
                    fills: self.clone(),
                    hash,
                })
            }
        }
    }

    /// Fills in progress (bounded by the requests in flight).
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }
}

/// The leader's guard: dropping it ends the fill and wakes every waiter.
#[derive(Debug)]
pub struct Lead {
    fills: Rc<Fills>,
    hash: u64,
}

impl Drop for Lead {
    fn drop(&mut self) {
        let gate = self.fills.map.borrow_mut().remove(&self.hash);
        if let Some((gate, _)) = gate {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_then_waiters_released_on_drop() {
        let fills = Rc::new(Fills::default());
        let Role::Lead(lead) = fills.join(1) else {
            panic!("first is the leader")
        };
        let Role::Wait(gate) = fills.join(1) else {
            panic!("second waits")
        };
        assert!(matches!(fills.join(2), Role::Lead(_)));
        assert_eq!(fills.len(), 1, "a dropped leader leaves the table");
        assert!(!gate.open.get());
        drop(lead);
        assert!(gate.open.get());
        assert!(fills.is_empty());
        assert!(matches!(fills.join(1), Role::Lead(_)));
    }
}
