//! Idle keep-alive connections hold no task and no buffers. A connection waiting for its next
//! request holds a read in flight, and the read holds the connection's 4 KiB input buffer; its
//! task holds its future (~5 KiB), output buffer and timer: ~11 KiB per idle connection,
//! where nginx and HAProxy, which wait on epoll readiness, allocate their buffers only when
//! bytes arrive (0.5 and 1.1 KiB, `scripts/idle_memory.py`).
//!
//! Waiting on readiness first would cost every request an extra io_uring operation (a poll,
//! then the read). So a connection waits with its read as before, and only once it has been
//! quiet for `PARK_AFTER` is the read cancelled and the connection reduced to an `Idle`: its
//! socket and its counts, waiting in a small task of its own on a poll that holds no buffer.
//! The connection's task, with its buffers and timer, goes back to the shard's parked tasks
//! (`workers`) for other clients. When the client sends again, or closes, the `Idle` is handed
//! to a task like a newly accepted connection; at the idle timeout it is closed. That timeout
//! is kept by the shard's sweep (`IdleSet::sweep`, every `IDLE_SWEEP_INTERVAL`), not by a
//! timer of its own: a monoio timer entry made the waiting task's future 1,280 bytes instead of
//! 552, 1.9 KiB per idle connection in all instead of 0.8 (`scripts/idle_memory.py`).
//!
//! A read that is cancelled may still have received bytes before the cancel took effect, and a
//! read whose future is dropped would lose them. So the wait uses monoio's cancellable read,
//! which ends with those bytes or with `ECANCELED`, and is awaited to its end.
//!
//! Used on every wait, that read cost ~750 user-space instructions more per keep-alive request
//! (5%, callgrind), about 500 of them SipHash: monoio files each cancellable operation in a
//! hash set and takes it out again. So it is used only while the shard holds
//! more than `limits.idle_release_connections` connections (1,000 by default), where the
//! memory matters: below, an idle connection keeps its ~11 KiB (11 MB per shard at most), as
//! before, and a benchmark's few dozen connections pay nothing.
//!
//! Over TLS the same holds: the read under monoio-rustls is cancellable through its socket
//! (`CancelableIo`), and the idle connection keeps only its socket and its rustls state
//! (`Parked`). An idle timeout closes it with close_notify, as a connection with its task
//! does.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::time::Instant;

use super::guard::{Closing, OpenConnection};
use super::workers::Client;
use super::{Conn, Workers};
use crate::listener::ListenerCtx;
use crate::shard::Shard;
use crate::signal::Signal;
use crate::stream::{Parked, CLOSE_NOTIFY_WAIT};
use crate::timer::TimedOut;

/// How long a connection waits for its next request holding its task and buffers. Longer than
/// any gap between the requests of a client under load (a benchmark's, a page's assets), so
/// that busy connections never pay for the hand-over (a cancel, a poll, a task hand-off: a few
/// µs), and short beside the idle timeout (`client_idle_ms`, 60 s by default).
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// How often the shard closes idle connections past their idle timeout: they close up to this
/// much after `client_idle_ms`.
pub const IDLE_SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A client connection between requests: its socket and the guard that counts it open.
pub struct Idle {
    pub(super) stream: Parked,
    pub(super) peer: SocketAddr,
    pub(super) listener: Rc<ListenerCtx>,
    pub(super) open: OpenConnection,
}

/// How the wait for a request's first bytes ended.
pub(super) enum Waited {
    /// Bytes arrived (in the input buffer).
    Bytes,
    /// The client closed, the read failed, or the idle timeout passed.
    End,
    /// Quiet for `PARK_AFTER`: the read was cancelled with nothing received. The idle timeout
    /// falls at the instant given.
    Idle(Instant),
}

impl Conn {
    /// Wait for the first bytes of the next request, for at most `client_idle`, or until
    /// `stop` fires (the shard drains: `Waited::End`, and a TLS connection's end sends
    /// close_notify). With `hand_off`, on a stream whose reads can be cancelled, give up the
    /// wait after `PARK_AFTER` (`Waited::Idle`).
    pub(super) async fn await_request(
        &mut self,
        client_idle: Duration,
        cap: usize,
        hand_off: bool,
        stop: Option<&Signal>,
    ) -> Waited {
        let now = Instant::now();
        let idle_end = now + client_idle;
        if !hand_off || client_idle <= PARK_AFTER || !self.stream.cancellable() {
            let fill = self.inbuf.fill(&mut self.stream, cap);
            let limited = self.timer.limit_at(idle_end, fill);
            let done = match stop {
                None => limited.await,
                Some(stop) => match stop.or_fired(limited).await {
                    Some(done) => done,
                    None => return Waited::End,
                },
            };
            return match done {
                Ok(Ok(n)) if n > 0 => Waited::Bytes,
                _ => Waited::End,
            };
        }
        let handle = self.canceller.handle();
        let mut fill = pin!(self.inbuf.fill_cancelable(&mut self.stream, cap, handle));
        let limited = self.timer.limit_at(now + PARK_AFTER, fill.as_mut());
        let done = match stop {
            None => limited.await,
            // Stopped: the read is cancelled as after `PARK_AFTER`, and the connection then
            // ends (`Conn::run` sees the drain), or serves what arrived meanwhile first.
            Some(stop) => stop.or_fired(limited).await.unwrap_or(Err(TimedOut)),
        };
        match done {
            Ok(Ok(n)) if n > 0 => return Waited::Bytes,
            Ok(_) => return Waited::End,
            Err(TimedOut) => {}
        }
        // `cancel` hands back a fresh canceller for the connection's next waits.
        self.canceller = std::mem::take(&mut self.canceller).cancel();
        match fill.await {
            Ok(n) if n > 0 => Waited::Bytes,
            // Cancelled before it received anything.
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Waited::Idle(idle_end),
            _ => Waited::End,
        }
    }
}

/// Wait, holding no buffer, until the client sends again or closes (then a task takes the
/// connection back) or the shard's sweep finds `until` past (the idle timeout: the connection
/// is closed).
pub(super) async fn wait(shard: Rc<Shard>, idle: Idle, until: Instant) {
    let ready = {
        let _counted = Counted::new(&shard.workers.idle);
        let deadline = Rc::new(Deadline {
            until,
            expired: Cell::new(false),
            waker: Cell::new(None),
        });
        shard.workers.idle.watch(&deadline);
        let mut readable = pin!(idle.stream.readable());
        poll_fn(|cx| {
            if let Poll::Ready(r) = readable.as_mut().poll(cx) {
                return Poll::Ready(r.is_ok());
            }
            if deadline.expired.get() {
                return Poll::Ready(false);
            }
            deadline.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    };
    if ready {
        Workers::dispatch(&shard, Client::Back(idle));
    } else if let Parked::Tls(_) = idle.stream {
        // The idle timeout, or a drain (`IdleSet::expire_all`), which waits for this.
        let _closing = Closing::new(&shard);
        // Boxed: a timer entry inline would grow every idle connection's waiting task.
        let mut stream = idle.stream.resume();
        let _ = Box::pin(monoio::time::timeout(CLOSE_NOTIFY_WAIT, stream.shutdown())).await;
    }
}

/// A shard's connections idle without a task: how many, and their timeouts for the sweep.
#[derive(Default)]
pub struct IdleSet {
    waiting: Cell<usize>,
    /// Held weakly: a connection that went on (its client sent, or closed) drops its own.
    deadlines: RefCell<Vec<Weak<Deadline>>>,
}

impl IdleSet {
    /// Connections idle now without a task (the `coregate_connections_idle` gauge).
    pub fn waiting(&self) -> usize {
        self.waiting.get()
    }

    /// The shard drains: every connection idle without a task ends now (over TLS with
    /// close_notify, which the drain waits for).
    pub fn expire_all(&self) {
        let deadlines = std::mem::take(&mut *self.deadlines.borrow_mut());
        for d in deadlines.iter().filter_map(Weak::upgrade) {
            d.expire();
        }
    }

    fn watch(&self, deadline: &Rc<Deadline>) {
        self.deadlines.borrow_mut().push(Rc::downgrade(deadline));
    }

    /// Wake the connections past their idle timeout (they close), and forget them and those
    /// that went on: one pass over the list, every `IDLE_SWEEP_INTERVAL`.
    pub fn sweep(&self) {
        let mut deadlines = self.deadlines.borrow_mut();
        if deadlines.is_empty() {
            return;
        }
        let now = Instant::now();
        deadlines.retain(|d| d.upgrade().is_some_and(|d| !d.expire_by(now)));
        // A burst of idle connections gone should not pin its memory.
        if deadlines.capacity() > 64 && deadlines.len() < deadlines.capacity() / 4 {
            let keep = deadlines.len() * 2;
            deadlines.shrink_to(keep);
        }
    }
}

/// An idle connection's timeout, shared with the shard's sweep.
pub(super) struct Deadline {
    until: Instant,
    expired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Deadline {
    /// Past `until` at `now`: marked expired and its waiter woken. The sweep then lets go.
    fn expire_by(&self, now: Instant) -> bool {
        if self.until > now {
            return false;
        }
        self.expire();
        true
    }

    fn expire(&self) {
        self.expired.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Counts a connection idle without a task for as long as it lives (dropped with the waiting
/// task too, when the shard ends).
struct Counted<'a>(&'a IdleSet);

impl<'a> Counted<'a> {
    fn new(set: &'a IdleSet) -> Self {
        set.waiting.set(set.waiting.get() + 1);
        Counted(set)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.waiting.set(self.0.waiting.get().saturating_sub(1));
    }
}
