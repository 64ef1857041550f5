//! One server as one shard sees it: its health view (active check verdict, passive ejection),
//! its slow-start ramp, this shard's in-flight count and latency average, and the consecutive
//! failures seen here. Plain `Cell`s: only this shard's tasks touch it, never across threads.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Latency assumed for a server never measured (Linkerd's p2c default is 30 ms; lower here
/// so that new servers get tried promptly on a LAN).
const DEFAULT_RTT_NS: f64 = 1_000_000.0;
/// Share of its weight a server gets at the start of its slow-start ramp.
pub const SLOW_START_FLOOR: f64 = 0.1;

#[derive(Debug)]
pub struct ServerState {
    /// The active check's verdict (true until a check says otherwise).
    up: Cell<bool>,
    /// Passively ejected until then.
    ejected_until: Cell<Option<Instant>>,
    /// When it last came back (up again, or ejection over): the start of its slow-start ramp.
    back_at: Cell<Option<Instant>>,
    /// This shard's requests to it, from pick to the end of the response.
    in_flight: Cell<u32>,
    /// Consecutive failures seen by this shard (outlier detection).
    failures: Cell<u32>,
    /// Peak-EWMA of the time to the response head, in ns, as of `ewma_at`.
    ewma_ns: Cell<f64>,
    ewma_at: Cell<Instant>,
}

impl ServerState {
    pub fn new(now: Instant) -> ServerState {
        ServerState {
            up: Cell::new(true),
            ejected_until: Cell::new(None),
            back_at: Cell::new(None),
            in_flight: Cell::new(0),
            failures: Cell::new(0),
            ewma_ns: Cell::new(DEFAULT_RTT_NS),
            ewma_at: Cell::new(now),
        }
    }

    /// Takes traffic: the active check has it up and it is not ejected.
    #[inline]
    pub fn usable(&self, now: Instant) -> bool {
        self.up.get() && self.ejected_until.get().is_none_or(|t| now >= t)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.get()
    }

    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// The active check changed its verdict.
    pub fn set_up(&self, up: bool, now: Instant) {
        if up && !self.up.get() {
            self.back_at.set(Some(now));
            self.failures.set(0);
        }
        self.up.set(up);
    }

    /// Ejected (passively) until `until`; its slow start begins then.
    pub fn eject(&self, until: Instant) {
        let later = self.ejected_until.get().is_none_or(|t| until > t);
        if later {
            self.ejected_until.set(Some(until));
            self.back_at.set(Some(until));
        }
        self.failures.set(0);
    }

    /// The ejection ends early (the active check saw it healthy).
    pub fn release(&self, now: Instant) {
        if self.ejected_until.get().is_some_and(|t| t > now) {
            self.back_at.set(Some(now));
        }
        self.ejected_until.set(None);
        self.failures.set(0);
    }

    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until.get()
    }

    /// Share of its weight it gets now: `SLOW_START_FLOOR` rising linearly to 1 over `window`
    /// after it came back; 1 without a window or once the ramp is over.
    pub fn ramp(&self, now: Instant, window: Duration) -> f64 {
        let Some(back) = self.back_at.get() else {
            return 1.0;
        };
        if window.is_zero() || now < back {
            return 1.0;
        }
        let f = now.duration_since(back).as_secs_f64() / window.as_secs_f64();
        if f >= 1.0 {
            self.back_at.set(None);
            return 1.0;
        }
        f.max(SLOW_START_FLOOR)
    }

    pub fn begin(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    pub fn end(&self) {
        debug_assert!(self.in_flight.get() > 0, "request end without a start");
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
    }

    /// One failure (connect, reset, timeout, 5xx). True when it makes `threshold` in a row, and
    /// the count starts over.
    pub fn failed(&self, threshold: u32) -> bool {
        let n = self.failures.get() + 1;
        if n >= threshold {
            self.failures.set(0);
            return true;
        }
        self.failures.set(n);
        false
    }

    pub fn succeeded(&self) {
        self.failures.set(0);
    }

    /// The latency average now: the last estimate decayed towards 0 over the time since, so
    /// that a server once slow and since avoided gets tried again (tower's PeakEwma).
    pub fn ewma_ns(&self, now: Instant, decay: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.ewma_at.get());
        self.ewma_ns.get() * (-elapsed.as_secs_f64() / decay.as_secs_f64()).exp()
    }

    /// Fold in one observed latency: a peak (above the estimate) is taken at once, lower
    /// values are averaged in with a weight that grows with the time since the last update.
    pub fn observe_latency(&self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let elapsed = now.saturating_duration_since(self.ewma_at.get());
        let w = (-elapsed.as_secs_f64() / decay.as_secs_f64()).exp();
        let next = self.ewma_ns.get() * w + rtt * (1.0 - w);
        self.ewma_ns.set(if rtt > next { rtt } else { next });
        self.ewma_at.set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_and_active_verdict() {
        let t0 = Instant::now();
        let s = ServerState::new(t0);
        assert!(s.usable(t0));
        s.eject(t0 + Duration::from_secs(5));
        assert!(!s.usable(t0 + Duration::from_secs(1)));
        assert!(s.usable(t0 + Duration::from_secs(5)));
        s.release(t0 + Duration::from_secs(1));
        assert!(s.usable(t0 + Duration::from_secs(1)));
        s.set_up(false, t0);
        assert!(!s.usable(t0 + Duration::from_secs(9)));
        s.set_up(true, t0);
        assert!(s.usable(t0));
    }

    #[test]
    fn slow_start_ramps_from_the_floor_to_full() {
        let t0 = Instant::now();
        let s = ServerState::new(t0);
        let w = Duration::from_secs(10);
        assert_eq!(s.ramp(t0, w), 1.0, "a server never gone is not ramping");
        s.set_up(false, t0);
        s.set_up(true, t0);
        assert_eq!(s.ramp(t0, w), SLOW_START_FLOOR);
        assert!((s.ramp(t0 + Duration::from_secs(5), w) - 0.5).abs() < 1e-9);
        assert_eq!(s.ramp(t0 + Duration::from_secs(11), w), 1.0);
        assert_eq!(s.ramp(t0 + Duration::from_secs(1), w), 1.0, "ramp over");
        assert_eq!(s.ramp(t0, Duration::ZERO), 1.0);
    }

    #[test]
    fn failures_count_in_a_row() {
        let s = ServerState::new(Instant::now());
        assert!(!s.failed(3));
        assert!(!s.failed(3));
        s.succeeded();
        assert!(!s.failed(3));
        assert!(!s.failed(3));
        assert!(s.failed(3));
        assert!(!s.failed(3), "count starts over after an ejection verdict");
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let t0 = Instant::now();
        let d = Duration::from_secs(10);
        let s = ServerState::new(t0);
        s.observe_latency(Duration::from_millis(50), t0, d);
        assert!((s.ewma_ns(t0, d) - 50e6).abs() < 1.0);
        s.observe_latency(Duration::from_millis(1), t0 + Duration::from_secs(10), d);
        let v = s.ewma_ns(t0 + Duration::from_secs(10), d);
        assert!(v > 1e6 && v < 25e6, "{v}");
        assert!(s.ewma_ns(t0 + Duration::from_secs(100), d) < 1e4);
    }
}
