//! A shard's parked connection tasks. A task per accepted connection cost a ~5 KiB allocation
//! for its future (copied three times on its way into the runtime) and a new timer entry (a
//! 128-byte aligned allocation, registered in the wheel). With `Connection: close` that is
//! every request: about 14% of coregate's user-space instructions per request (callgrind).
//!
//! So a connection task does not end with its connection. It parks here, keeping its future's
//! memory, its `Timer` and its buffers (a `Kit`), and the shard's next accepted connection is
//! handed to it. Up to `PARKED_MAX` tasks stay parked; one finishing when that many are parked
//! ends. The most recently parked task is handed the next connection: its memory is the
//! likeliest in cache.
//!
//! Reusing the `Timer` is sound because it stays in one task: a monoio timer keeps the waker of
//! the task that first polled it, so it could not be pooled across tasks.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use monoio::io::Canceller;
use monoio::net::TcpStream;

use super::idle::{Idle, IdleSet};
use super::ConnBuffers;
use crate::listener::ListenerCtx;
use crate::shard::Shard;
use crate::timer::Timer;

/// Tasks kept parked per shard: enough for a burst of short connections (a client with 64 open
/// at a time reuses 64). Each holds ~12 KiB (its future, buffers and timer entry): ~750 KiB at
/// most per shard.
const PARKED_MAX: usize = 64;

/// What a connection task keeps from one client to the next.
pub(super) struct Kit {
    pub timer: Timer,
    pub bufs: ConnBuffers,
    /// Cancels the wait for a request when the connection goes idle (`idle`).
    pub canceller: Canceller,
}

/// A client connection on its way to a task: a new one, or an idle one whose client sent
/// again (`idle`).
pub enum Client {
    New(Accepted),
    Back(Idle),
}

impl From<Accepted> for Client {
    fn from(a: Accepted) -> Client {
        Client::New(a)
    }
}

/// An accepted client connection on its way to a task.
pub struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub listener: Rc<ListenerCtx>,
}

/// Where a parked task waits for its next connection.
#[derive(Default)]
struct Slot {
    next: Cell<Option<Client>>,
    waker: Cell<Option<Waker>>,
}

impl Slot {
    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
pub struct Workers {
    parked: RefCell<Vec<Rc<Slot>>>,
    closed: Cell<bool>,
    /// Connections waiting idle without a task (`idle`).
    pub idle: IdleSet,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("parked", &self.parked.borrow().len())
            .field("closed", &self.closed.get())
            .field("idle", &self.idle.waiting())
            .finish()
    }
}

impl Workers {
    /// Serve `conn` on `shard`: in a parked task if there is one, else in a new task.
    pub fn dispatch(shard: &Rc<Shard>, conn: Client) {
        let parked = shard.workers.parked.borrow_mut().pop();
        match parked {
            Some(slot) => {
                slot.next.set(Some(conn));
                slot.wake();
            }
            None => {
                monoio::spawn(work(shard.clone(), conn));
            }
        }
    }

    /// Shutdown: parked tasks end, and tasks finishing from now on end instead of parking.
    pub fn close(&self) {
        self.closed.set(true);
        for slot in self.parked.borrow_mut().drain(..) {
            slot.wake();
        }
    }

    /// Tasks parked now (the `coregate_connection_tasks_parked` gauge).
    pub fn parked(&self) -> usize {
        self.parked.borrow().len()
    }

    /// Park `slot` unless the shard shuts down or enough tasks are parked.
    fn park(&self, slot: &Rc<Slot>) -> bool {
        let mut parked = self.parked.borrow_mut();
        if self.closed.get() || parked.len() >= PARKED_MAX {
            return false;
        }
        parked.push(slot.clone());
        true
    }
}

/// One connection task: serves `conn`, then each connection it is handed while parked.
async fn work(shard: Rc<Shard>, mut conn: Client) {
    // Made when the task first parks: a task whose client stays connected never needs one.
    let mut slot: Option<Rc<Slot>> = None;
    let mut kit = Kit {
        timer: Timer::new(),
        bufs: ConnBuffers::new(),
        canceller: Canceller::new(),
    };
    loop {
        // A panic inside a connection is caught in `serve` and ends this task (the state of
        // its timer and buffers is then unknown).
        kit = match super::serve(shard.clone(), conn, kit).await {
            Some(kit) => kit,
            None => return,
        };
        let slot = slot.get_or_insert_with(Rc::default);
        if !shard.workers.park(slot) {
            return;
        }
        let next = poll_fn(|cx| {
            if let Some(conn) = slot.next.take() {
                return Poll::Ready(Some(conn));
            }
            if shard.workers.closed.get() {
                return Poll::Ready(None);
            }
            slot.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        match next {
            Some(next) => conn = next,
            None => return,
        }
    }
}
