//! Steady background load for tests that change things under traffic: a few threads, each
//! with a keep-alive connection, sending GETs until stopped (bounded in count and time), and
//! recording every answer: status, the origin that answered, and anything that failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::Client;

/// Requests per thread at most, and the longest run, whatever the test does.
const REQUESTS_MAX: usize = 200_000;
const RUN_MAX: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: usize,
    /// Anything but a 200: what happened.
    pub failures: Vec<String>,
    /// 200s by `X-Origin`.
    pub by_origin: HashMap<String, usize>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// `threads` threads sending `GET path` to `addr`.
    pub fn start(addr: SocketAddr, path: &str, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, tally, path) = (stop.clone(), tally.clone(), path.to_string());
                thread::spawn(move || {
                    let started = Instant::now();
                    let mut c = Client::connect(addr);
                    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
                    for _ in 0..REQUESTS_MAX {
                        if stop.load(Ordering::SeqCst) || started.elapsed() > RUN_MAX {
                            return;
                        }
                        c.send(req.as_bytes());
                        let r = c.read_response(false);
                        let mut t = tally.lock().unwrap();
                        match r {
                            Some(r) if r.status == 200 => {
                                t.ok += 1;
                                *t.by_origin.entry(r.origin()).or_default() += 1;
                            }
                            Some(r) => {
                                t.failures
                                    .push(format!("status {}: {}", r.status, r.text()))
                            }
                            None => {
                                t.failures.push("connection closed".into());
                                drop(t);
                                c = Client::connect(addr);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// 200s from `origin` so far.
    pub fn from(&self, origin: &str) -> usize {
        self.tally
            .lock()
            .unwrap()
            .by_origin
            .get(origin)
            .copied()
            .unwrap_or(0)
    }

    /// Stop and return the final tally.
    pub fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.tally()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
