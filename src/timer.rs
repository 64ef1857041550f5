//! `Timer`: one connection's reusable deadline. A monoio `timeout()` builds a fresh 640-byte
//! timer entry per I/O operation, registers it in the wheel, and is moved (memcpy) with every
//! future it wraps; a connection makes four or more timed operations per proxied request.
//! `Timer` holds one pinned `Sleep` for the connection's life and re-arms it per operation
//! (`limit`), so a timed operation costs a deadline update and a small wrapper future.
//!
//! A `Timer` serves one operation at a time (`limit` borrows it mutably). When an operation
//! ends first, the entry stays armed: if it fires later it only wakes the connection's task
//! for nothing, and the next `limit` re-arms it anyway.

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
}

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

impl Timer {
    /// Needs the runtime's timer (every shard runtime enables it).
    pub fn new() -> Timer {
        Timer {
            sleep: Box::pin(monoio::time::sleep(IDLE_ARM)),
        }
    }

    /// Run `fut` for at most `d` from now.
    pub fn limit<F: Future>(&mut self, d: Duration, fut: F) -> Limited<'_, F> {
        self.limit_at(Instant::now() + d, fut)
    }

    /// Run `fut` until `deadline` at most.
    pub fn limit_at<F: Future>(&mut self, deadline: Instant, fut: F) -> Limited<'_, F> {
        self.sleep.as_mut().reset(deadline);
        Limited {
            fut,
            sleep: self.sleep.as_mut(),
        }
    }
}

pin_project! {
    /// The future of `Timer::limit`: `fut`'s output, or `TimedOut` at the deadline.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Limited<'a, F> {
        #[pin]
        fut: F,
        sleep: Pin<&'a mut Sleep>,
    }
}

impl<F: Future> Future for Limited<'_, F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        if let Poll::Ready(v) = me.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match me.sleep.as_mut().poll(cx) {
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
}
