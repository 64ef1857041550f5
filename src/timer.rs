//! `Timer`: one connection's reusable deadline. A monoio `timeout()` builds a fresh 640-byte
//! timer entry per I/O operation, registers it in the wheel, and is moved (memcpy) with every
//! future it wraps; a connection makes four or more timed operations per proxied request.
//! `Timer` holds one pinned `Sleep` for the connection's life and gives each operation its
//! deadline (`limit`), so a timed operation costs a deadline update and a small wrapper future.
//!
//! A `Timer` serves one operation at a time (`limit` borrows it mutably). When an operation
//! ends first, the entry stays armed: if it fires later it only wakes the connection's task
//! for nothing, and the operation then running re-arms it for its own deadline (below).
//!
//! Re-arming is lazy. Moving a wheel entry costs ~100 instructions, and the deadlines of a
//! request's operations mostly come later than the one before (each is "now + a timeout").
//! So the entry is moved only when the new deadline is earlier than the entry's; otherwise it
//! stays, fires early, and the wrapper then re-arms it for the real deadline instead of timing
//! out. An entry is thus always at or before the deadline it serves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::time::{Instant, Sleep};
use pin_project_lite::pin_project;

/// Armed far ahead until the first operation sets a real deadline.
const IDLE_ARM: Duration = Duration::from_secs(86_400);

/// The operation did not finish before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

#[derive(Debug)]
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// When the wheel entry fires (never after `deadline`).
    armed: Instant,
    /// When the current operation times out.
    deadline: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

impl Timer {
    /// Needs the runtime's timer (every shard runtime enables it).
    pub fn new() -> Timer {
        let at = Instant::now() + IDLE_ARM;
        Timer {
            sleep: Box::pin(monoio::time::sleep_until(at)),
            armed: at,
            deadline: at,
        }
    }

    /// Run `fut` for at most `d` from now.
    #[inline]
    pub fn limit<F: Future>(&mut self, d: Duration, fut: F) -> Limited<'_, F> {
        self.limit_at(Instant::now() + d, fut)
    }

    /// Run `fut` until `deadline` at most.
    #[inline]
    pub fn limit_at<F: Future>(&mut self, deadline: Instant, fut: F) -> Limited<'_, F> {
        self.deadline = deadline;
        if self.armed > deadline {
            self.arm(deadline);
        }
        Limited { fut, timer: self }
    }

    fn arm(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at);
        self.armed = at;
    }

    /// Ready once the deadline has passed; an entry that fired early is re-armed for it.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.armed >= self.deadline || Instant::now() >= self.deadline {
                return Poll::Ready(());
            }
            self.arm(self.deadline);
        }
    }
}

pin_project! {
    /// The future of `Timer::limit`: `fut`'s output, or `TimedOut` at the deadline.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Limited<'a, F> {
        #[pin]
        fut: F,
        timer: &'a mut Timer,
    }
}

impl<F: Future> Future for Limited<'_, F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        if let Poll::Ready(v) = me.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match me.timer.poll_deadline(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[monoio::test_all(timer_enabled = true)]
    async fn limit_times_out_and_rearms() {
        let mut t = Timer::new();
        let slow = monoio::time::sleep(Duration::from_secs(30));
        let r = t.limit(Duration::from_millis(20), slow).await;
        assert_eq!(r, Err(TimedOut));
        // Re-armed: a fast operation after an expiry completes.
        let r = t.limit(Duration::from_secs(30), async { 7 }).await;
        assert_eq!(r, Ok(7));
        // And an expired timer, re-armed, expires again.
        let slow = monoio::time::sleep(Duration::from_secs(30));
        let started = std::time::Instant::now();
        let r = t.limit(Duration::from_millis(20), slow).await;
        assert_eq!(r, Err(TimedOut));
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_later_deadline_is_kept_and_an_earlier_one_is_met() {
        let mut t = Timer::new();
        // Armed for 30 ms, then an operation allowed 300 ms: the entry fires at 30 ms and
        // must be re-armed, not taken for a timeout.
        let r = t.limit(Duration::from_millis(30), async { 1 }).await;
        assert_eq!(r, Ok(1));
        let started = std::time::Instant::now();
        let op = monoio::time::sleep(Duration::from_millis(120));
        let r = t.limit(Duration::from_millis(300), op).await;
        assert_eq!(r, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(120));
        // Then an earlier deadline than the one armed: it must still be met.
        let r = t.limit(Duration::from_secs(60), async { 2 }).await;
        assert_eq!(r, Ok(2));
        let started = std::time::Instant::now();
        let slow = monoio::time::sleep(Duration::from_secs(30));
        let r = t.limit(Duration::from_millis(40), slow).await;
        assert_eq!(r, Err(TimedOut));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
