//! Health end to end: active checks (one probe stream per server per node, down and back up),
//! passive outlier ejection (5xx answers, a killed origin), every server down (503 or fail
//! open), and a sticky client moving off a dead server. Real origins, killed and restarted.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const FAST_CHECKS: &str = "\n[upstream.health]\npath = \"/healthz\"\ninterval_ms = 100\n\
timeout_ms = 500\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";

/// Requests other than health probes.
fn traffic(o: &Origin) -> usize {
    o.received()
        .iter()
        .filter(|r| r.target != "/healthz")
        .count()
}

#[test]
fn active_check_takes_a_dead_origin_out_and_brings_it_back() {
    let (a, b) = (Origin::fixed("a", "x"), Origin::fixed("b", "x"));
    // No retries: a request sent to a dead server would fail, so success shows it gets none.
    let cfg = lb_config("retries = 0", &weight1(&[&a, &b]), FAST_CHECKS, "");
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(proxy.addr());
    let seen: Vec<String> = (0..4).map(|_| c.get("/").origin()).collect();
    assert!(seen.contains(&"a".to_string()) && seen.contains(&"b".to_string()));

    a.stop();
    // Until every shard has heard that a is down, half the requests fail (no retries).
    wait_until(DEADLINE, "a marked down", || {
        (0..20).all(|_| c.get("/").origin() == "b")
    });
    assert!(proxy.log().contains("active check: server down"));
    for _ in 0..50 {
        let r = c.get("/");
        assert_eq!((r.status, r.origin().as_str()), (200, "b"));
    }

    a.restart();
    wait_until(DEADLINE, "a serving again", || c.get("/").origin() == "a");
    assert!(proxy.log().contains("active check: server up"));
    let probe = a
        .received()
        .into_iter()
        .find(|r| r.target == "/healthz")
        .unwrap();
    assert_eq!(probe.method, "GET");
    assert_eq!(probe.header("host"), Some(&*a.addr.to_string()));
}

#[test]
fn one_probe_stream_per_server_not_per_shard() {
    let origin = Origin::fixed("o", "x");
    let checks = "\n[upstream.health]\ninterval_ms = 50\n";
    let cfg = lb_config("", &weight1(&[&origin]), checks, "[server]\nworkers = 4\n");
    let proxy = Proxy::start(&cfg);
    let t0 = Instant::now();
    wait_until(DEADLINE, "20 probes", || origin.count_to("/healthz") >= 20);
    let elapsed = t0.elapsed();
    // One stream probes at most once per 50 ms (plus one probe before t0); four would
    // reach 20 probes in about 250 ms.
    assert!(
        elapsed >= Duration::from_millis(18 * 50),
        "20 probes in {elapsed:?}: more than one stream"
    );
    assert!(proxy.log().contains("control thread started"));
}

/// An origin whose /healthz answers 503 (down) while other paths answer 200.
fn failing_checks(name: &str) -> Origin {
    let ok = response(200, &[("X-Origin", name)], b"x");
    let down = response(503, &[], b"down");
    Origin::start(move |r| {
        Reply::Bytes(if r.target == "/healthz" {
            down.clone()
        } else {
            ok.clone()
        })
    })
}

#[test]
fn every_server_down_answers_503_quickly_or_fails_open() {
    for fail_open in [false, true] {
        let (a, b) = (failing_checks("a"), failing_checks("b"));
        let keys = format!("fail_open = {fail_open}");
        let proxy = Proxy::start(&lb_config(&keys, &weight1(&[&a, &b]), FAST_CHECKS, ""));
        wait_until(DEADLINE, "both marked down", || {
            proxy.log().matches("active check: server down").count() >= 2
        });
        let mut c = Client::connect(proxy.addr());
        if !fail_open {
            // The log line comes just before the shards hear of it.
            wait_until(DEADLINE, "503", || c.get("/").status == 503);
        }
        let before = traffic(&a) + traffic(&b);
        let t0 = Instant::now();
        for _ in 0..20 {
            let r = c.get("/");
            assert_eq!(r.status, if fail_open { 200 } else { 503 });
        }
        let per_request = t0.elapsed() / 20;
        eprintln!("fail_open = {fail_open}: {per_request:?} per request with every server down");
        let sent = traffic(&a) + traffic(&b) - before;
        if fail_open {
            assert_eq!(sent, 20);
        } else {
            assert_eq!(sent, 0, "nothing is sent to a down server");
            assert!(per_request < Duration::from_millis(500), "{per_request:?}");
        }
    }
}

#[test]
fn outlier_detection_ejects_an_origin_answering_500() {
    let (g1, g2) = (Origin::fixed("g1", "x"), Origin::fixed("g2", "x"));
    let bad = Origin::start(|_| Reply::Bytes(response(500, &[("X-Origin", "bad")], b"oops")));
    let outlier = "\n[upstream.outlier]\nconsecutive_failures = 3\nbase_ejection_ms = 60000\n";
    let proxy = Proxy::start(&lb_config("", &weight1(&[&g1, &g2, &bad]), outlier, ""));
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(proxy.addr())).collect();
    let mut errors = 0;
    for i in 0..300 {
        if clients[i % 6].get("/").status == 500 {
            errors += 1;
        }
    }
    // Each shard ejects it after 3 failures of its own at most (sooner once the control
    // thread has told it about another shard's ejection); this machine runs 2 shards.
    let shards = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        errors >= 3 && errors <= 3 * shards,
        "{errors} answers were 500"
    );
    assert_eq!(traffic(&bad), errors);
    wait_until(DEADLINE, "ejection logged", || {
        proxy.log().contains("outlier: server ejected")
    });
    for c in clients.iter_mut() {
        assert_eq!(c.get("/").status, 200);
    }
}

#[test]
fn an_ejected_server_returns_after_its_ejection_and_the_next_one_lasts_longer() {
    let good = Origin::fixed("good", "x");
    let bad = Origin::start(|_| Reply::Bytes(response(502, &[("X-Origin", "bad")], b"x")));
    let outlier = "\n[upstream.outlier]\nconsecutive_failures = 1\nbase_ejection_ms = 300\n";
    let cfg = lb_config(
        "",
        &weight1(&[&good, &bad]),
        outlier,
        "[server]\nworkers = 1\n",
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(proxy.addr());
    wait_until(DEADLINE, "first ejection", || {
        c.get("/");
        proxy.log().contains("ejections=1")
    });
    let after_first = traffic(&bad);
    wait_until(DEADLINE, "back after 300 ms, then ejected again", || {
        c.get("/");
        proxy.log().contains("ejections=2")
    });
    assert!(
        traffic(&bad) > after_first,
        "it got traffic again after the ejection"
    );
    assert!(
        proxy.log().contains("ejection_ms=600 ejections=2"),
        "{}",
        proxy.log()
    );
}

#[test]
fn a_killed_origin_is_ejected_and_no_get_fails() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let outlier = "\n[upstream.outlier]\nconsecutive_failures = 2\nbase_ejection_ms = 30000\n";
    let proxy = Proxy::start(&lb_config("retries = 2", &weight1(&refs), outlier, ""));
    let done = Arc::new(AtomicUsize::new(0));
    let addr = proxy.addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let done = done.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..250 {
                    let r = c.get("/");
                    assert_eq!(r.status, 200, "request {i}: {}", r.text());
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_until(DEADLINE, "300 requests", || {
        done.load(Ordering::SeqCst) >= 300
    });
    origins[1].stop();
    for c in clients {
        c.join().expect("every GET succeeded");
    }
    assert_eq!(done.load(Ordering::SeqCst), 1000);
    let ejected = format!("server={} ejection_ms", origins[1].addr);
    wait_until(DEADLINE, "ejection logged", || {
        proxy.log().contains(&ejected)
    });
}

#[test]
fn a_sticky_client_moves_when_its_server_dies() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let proxy = Proxy::start(&lb_config(
        "sticky_cookie = \"cg_route\"",
        &weight1(&refs),
        FAST_CHECKS,
        "",
    ));
    let cookie = |r: &Response| {
        let set = r.header("set-cookie").expect("Set-Cookie").to_string();
        set.split(';').next().unwrap().to_string()
    };
    let first = Client::connect(proxy.addr()).get("/");
    let (home, jar) = (first.origin(), cookie(&first));
    let req = |jar: &str| format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: {jar}\r\n\r\n");
    for _ in 0..10 {
        assert_eq!(
            Client::connect(proxy.addr()).request(&req(&jar)).origin(),
            home
        );
    }
    let index: usize = home[1..].parse().unwrap();
    origins[index].stop();
    let moved = Client::connect(proxy.addr()).request(&req(&jar));
    assert_eq!(moved.status, 200);
    assert_ne!(moved.origin(), home);
    let new_jar = cookie(&moved);
    assert_ne!(new_jar, jar);
    for _ in 0..10 {
        let r = Client::connect(proxy.addr()).request(&req(&new_jar));
        assert_eq!(r.origin(), moved.origin());
    }
}

#[test]
fn a_server_back_from_down_ramps_up_under_slow_start() {
    let (a, b) = (Origin::fixed("a", "x"), Origin::fixed("b", "x"));
    let keys = "balance = \"weighted\"\nslow_start_ms = 120000";
    let proxy = Proxy::start(&lb_config(keys, &weight1(&[&a, &b]), FAST_CHECKS, ""));
    a.stop();
    wait_until(DEADLINE, "a marked down", || {
        proxy.log().contains("active check: server down")
    });
    a.restart();
    wait_until(DEADLINE, "a marked up", || {
        proxy.log().contains("active check: server up")
    });
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(proxy.addr())).collect();
    let back = (0..1000)
        .filter(|i| clients[i % 4].get("/").origin() == "a")
        .count();
    eprintln!("slow start: the returning server got {back} of 1000 requests (50% without)");
    // 10% of its weight for the first 12 s, then rising by 1/120 per second.
    assert!((30..=250).contains(&back), "{back} of 1000");
}

#[test]
fn shutdown_with_health_checks_running_is_clean() {
    let origin = Origin::fixed("o", "x");
    let checks = "\n[upstream.health]\ninterval_ms = 20\n[upstream.outlier]\n";
    let mut proxy = Proxy::start(&lb_config("", &weight1(&[&origin]), checks, ""));
    wait_until(DEADLINE, "probes running", || {
        origin.count_to("/healthz") >= 2
    });
    assert_eq!(Client::connect(proxy.addr()).get("/").status, 200);
    proxy.signal(libc::SIGTERM);
    assert_eq!(proxy.wait_exit(DEADLINE), Some(0));
}

#[test]
fn a_malformed_or_slow_health_answer_fails_the_probe() {
    // Conflicting lengths: the proxy would answer 502 for this head, so the probe fails too.
    let malformed = Origin::start(|r| {
        Reply::Bytes(if r.target == "/healthz" {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx".to_vec()
        } else {
            response(200, &[], b"x")
        })
    });
    let slow = Origin::start(|_| Reply::Delayed(Duration::from_secs(2), response(200, &[], b"x")));
    let checks =
        "\n[upstream.health]\ninterval_ms = 50\ntimeout_ms = 200\nunhealthy_threshold = 1\n";
    let proxy = Proxy::start(&lb_config("", &weight1(&[&malformed, &slow]), checks, ""));
    let mut c = Client::connect(proxy.addr());
    wait_until(DEADLINE, "both down: 503", || c.get("/").status == 503);
    assert_eq!(proxy.log().matches("active check: server down").count(), 2);
}
