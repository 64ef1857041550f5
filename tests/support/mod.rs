//! Test harness shared by tests/*.rs: real origin servers on loopback that record what they
//! receive, the real coregate binary started on an ephemeral port, and raw-socket HTTP clients.
//! Every wait has a deadline; nothing sleeps to synchronise.
#![allow(dead_code, clippy::disallowed_types, clippy::disallowed_methods)]

pub mod dns;
pub mod jwt;
pub mod load;
pub mod ops;
pub mod redis;

use std::sync::atomic::AtomicUsize;
use std::thread;
use std::time::{Duration, Instant};

mod bodies;
mod client;
mod config;
mod origin;
mod proxy;
mod rel;
mod tls;
mod ws;
#[allow(unused_imports)]
pub use bodies::*;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use origin::*;
#[allow(unused_imports)]
pub use proxy::*;
#[allow(unused_imports)]
pub use rel::*;
#[allow(unused_imports)]
pub use tls::*;
#[allow(unused_imports)]
pub use ws::*;

/// Default deadline for any single wait in a test.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

// `rel` has a `poll_until` too: this one, an item of this module, shadows the glob re-export.
/// Poll `done` every few milliseconds until it holds or `within` passes; returns whether it held.
pub fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `ok` admitted requests are within 10 % of `limit`, either way: how closely a rate
/// limit under load must hold.
pub fn within_10_percent(ok: usize, limit: usize) -> bool {
    (limit * 9 / 10..=limit * 11 / 10).contains(&ok)
}

/// Poll `cond` every 10 ms until it holds; panics with `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}
