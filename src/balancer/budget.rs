//! Retry budget of one cluster on one shard (Finagle's and Linkerd's design): over a sliding
//! window of the last 10 seconds, retries may reach `percent` % of requests plus
//! `min_per_s` per second. During an outage retries therefore add at most `percent` % to the
//! load on the remaining servers instead of multiplying it.

use std::cell::Cell;
use std::time::Instant;

use crate::config::RetryBudget as Settings;

/// Window length, in one-second slots.
pub const WINDOW_S: usize = 10;

#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    /// The second (since `epoch`) the newest slot belongs to.
    current_s: Cell<u64>,
    requests: [Cell<u32>; WINDOW_S],
    retries: [Cell<u32>; WINDOW_S],
}

impl RetryBudget {
    pub fn new(now: Instant) -> RetryBudget {
        RetryBudget {
            epoch: now,
            current_s: Cell::new(0),
            requests: Default::default(),
            retries: Default::default(),
        }
    }

    /// Count one request (not its retries).
    pub fn on_request(&self, now: Instant) {
        let slot = self.advance(now);
        bump(&self.requests[slot]);
    }

    /// Take one retry from the budget if there is room; false means: do not retry.
    pub fn try_retry(&self, now: Instant, settings: Settings) -> bool {
        let slot = self.advance(now);
        let requests: u64 = self.requests.iter().map(|c| u64::from(c.get())).sum();
        let retries: u64 = self.retries.iter().map(|c| u64::from(c.get())).sum();
        let allowed = requests * u64::from(settings.percent) / 100
            + u64::from(settings.min_per_s) * WINDOW_S as u64;
        if retries >= allowed {
            return false;
        }
        bump(&self.retries[slot]);
        true
    }

    /// Move the window to `now`, clearing the slots of seconds that passed; returns the slot.
    fn advance(&self, now: Instant) -> usize {
        let s = now.saturating_duration_since(self.epoch).as_secs();
        let cur = self.current_s.get();
        if s > cur {
            let stale = (s - cur).min(WINDOW_S as u64);
            for k in 1..=stale {
                let slot = ((cur + k) % WINDOW_S as u64) as usize;
                self.requests[slot].set(0);
                self.retries[slot].set(0);
            }
            self.current_s.set(s);
        }
        (self.current_s.get() % WINDOW_S as u64) as usize
    }
}

fn bump(c: &Cell<u32>) {
    c.set(c.get().saturating_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_stay_within_the_share_of_requests() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        let s = Settings {
            percent: 20,
            min_per_s: 0,
        };
        let mut granted = 0;
        for _ in 0..100 {
            b.on_request(t0);
            if b.try_retry(t0, s) {
                granted += 1;
            }
        }
        assert_eq!(granted, 20);
        // Ten seconds later the window has forgotten all of it.
        let later = t0 + Duration::from_secs(11);
        assert!(!b.try_retry(later, s));
        b.on_request(later);
        for _ in 0..4 {
            b.on_request(later);
        }
        assert!(b.try_retry(later, s));
        assert!(!b.try_retry(later, s));
    }

    #[test]
    fn the_floor_allows_retries_without_traffic() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        let s = Settings {
            percent: 0,
            min_per_s: 2,
        };
        let granted = (0..100).filter(|_| b.try_retry(t0, s)).count();
        assert_eq!(granted, 2 * WINDOW_S);
    }
}
