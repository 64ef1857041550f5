//! Graceful shutdown under load loses no accepted request: clients keep sending while SIGTERM
//! arrives; every request that reached the origin gets its response to the client, and every
//! request without a response never reached the origin (so a client may safely retry it).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::*;

const CLIENTS: usize = 8;

/// Send `/c{t}/{i}` requests on keep-alive connections, reconnecting when one closes, until the
/// proxy stops accepting. Returns the targets answered with 200 and the echoed target.
fn client_loop(addr: std::net::SocketAddr, t: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut answered = Vec::new();
    let mut i = 0;
    'connections: for _ in 0..10_000 {
        let Some(mut c) = Client::try_connect(addr) else {
            break;
        };
        for _ in 0..100_000 {
            if stop.load(Ordering::SeqCst) {
                break 'connections;
            }
            let target = format!("/c{t}/{i}");
            i += 1;
            let sent = std::io::Write::write_all(
                &mut c.stream,
                format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
            );
            if sent.is_err() {
                continue 'connections;
            }
            match c.read_response(false) {
                Some(r) => {
                    assert_eq!(r.status, 200, "{target}");
                    assert_eq!(r.header("x-target"), Some(target.as_str()));
                    answered.push(target);
                    if r.header("connection") == Some("close") {
                        continue 'connections;
                    }
                }
                None => continue 'connections,
            }
        }
    }
    answered
}

#[test]
fn shutdown_under_load_loses_no_accepted_request() {
    let origin = Origin::echo();
    let mut proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[server]\ndrain_timeout_ms = 10000\n",
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (addr, stop) = (proxy.addr(), stop.clone());
            thread::spawn(move || client_loop(addr, t, stop))
        })
        .collect();
    origin.wait_requests(500);
    proxy.signal(libc::SIGTERM);
    let code = proxy.wait_exit(Duration::from_secs(15));
    stop.store(true, Ordering::SeqCst);
    assert_eq!(code, Some(0), "log:\n{}", proxy.log());
    let mut answered = BTreeSet::new();
    for c in clients {
        answered.extend(c.join().expect("client thread"));
    }
    let reached: BTreeSet<String> = origin.received().into_iter().map(|r| r.target).collect();
    let lost: Vec<_> = reached.difference(&answered).collect();
    assert!(
        lost.is_empty(),
        "{} requests reached the origin but their answer was lost: {lost:?}",
        lost.len()
    );
    assert!(answered.is_subset(&reached));
    eprintln!(
        "drain under load: {} requests answered, none lost",
        answered.len()
    );
}
