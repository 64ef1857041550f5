//! Load-balancing algorithms end to end: coregate in front of real origins on loopback, over
//! real sockets, each distribution measured over at least 1,000 requests with tolerances.

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use support::*;

/// `n` requests on `conns` connections (in turn); how many each origin answered.
fn spread(proxy: &Proxy, conns: usize, n: usize) -> HashMap<String, usize> {
    let mut clients: Vec<Client> = (0..conns).map(|_| Client::connect(proxy.addr())).collect();
    let mut counts = HashMap::new();
    for i in 0..n {
        let r = clients[i % conns].get("/x");
        assert_eq!(r.status, 200, "request {i}");
        *counts.entry(r.origin()).or_insert(0) += 1;
    }
    counts
}

fn within(got: usize, want: usize, tolerance_pct: usize) -> bool {
    let slack = want * tolerance_pct / 100;
    got + slack >= want && got <= want + slack
}

#[test]
fn round_robin_spreads_evenly_over_many_connections() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let proxy = Proxy::start(&lb_config("", &weight1(&refs), "", ""));
    let counts = spread(&proxy, 12, 1200);
    eprintln!("round_robin, 1200 requests: {counts:?}");
    for i in 0..3 {
        let got = counts.get(&format!("o{i}")).copied().unwrap_or(0);
        assert!(within(got, 400, 5), "o{i} got {got} of 1200: {counts:?}");
    }
}

#[test]
fn weighted_is_smooth_and_keeps_the_ratios() {
    for driver in [Driver::Auto, Driver::Legacy] {
        let (a, b, c) = (
            Origin::fixed("a", "x"),
            Origin::fixed("b", "x"),
            Origin::fixed("c", "x"),
        );
        let servers = [(a.addr, 5), (b.addr, 1), (c.addr, 1)];
        let config = lb_config(
            "balance = \"weighted\"",
            &servers,
            "",
            "[server]\nworkers = 1\n",
        );
        let proxy = Proxy::start_with(&config, driver);
        let mut client = Client::connect(proxy.addr());
        let order: Vec<String> = (0..7).map(|_| client.get("/").origin()).collect();
        assert_eq!(order, ["a", "a", "b", "a", "c", "a", "a"], "{driver:?}");
        let counts = spread(&proxy, 4, 1400);
        assert_eq!(counts.get("a"), Some(&1000), "{counts:?}");
        assert_eq!(counts.get("b"), Some(&200), "{counts:?}");
        assert_eq!(counts.get("c"), Some(&200), "{counts:?}");
    }
}

/// `threads` clients in parallel, `each` GETs apiece; answers per origin.
fn parallel(proxy: &Proxy, threads: usize, each: usize) -> HashMap<String, usize> {
    let addr = proxy.addr();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                (0..each)
                    .map(|_| {
                        let r = c.get("/");
                        assert_eq!(r.status, 200);
                        r.origin()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for w in workers {
        for o in w.join().unwrap() {
            *counts.entry(o).or_insert(0) += 1;
        }
    }
    counts
}

fn slow_origin(name: &str, delay_ms: u64) -> Origin {
    let resp = response(200, &[("X-Origin", name)], b"slow");
    Origin::start(move |_| Reply::Delayed(Duration::from_millis(delay_ms), resp.clone()))
}

#[test]
fn least_conn_favours_the_fast_server() {
    let fast = Origin::fixed("fast", "x");
    let slow = slow_origin("slow", 100);
    let config = lb_config(
        "balance = \"least_conn\"",
        &weight1(&[&fast, &slow]),
        "",
        "[server]\nworkers = 1\n",
    );
    let proxy = Proxy::start(&config);
    let counts = parallel(&proxy, 10, 100);
    eprintln!("least_conn, 1000 requests, 10 in parallel: {counts:?}");
    let slow_n = counts.get("slow").copied().unwrap_or(0);
    assert_eq!(counts.values().sum::<usize>(), 1000);
    // Round robin would send 500 to the slow server.
    assert!(slow_n <= 100, "slow got {slow_n} of 1000: {counts:?}");
}

#[test]
fn p2c_ewma_avoids_the_slow_server() {
    let (f1, f2) = (Origin::fixed("f1", "x"), Origin::fixed("f2", "x"));
    let slow = slow_origin("slow", 200);
    let config = lb_config(
        "balance = \"p2c_ewma\"",
        &weight1(&[&f1, &f2, &slow]),
        "",
        "",
    );
    let proxy = Proxy::start(&config);
    let counts = spread(&proxy, 4, 1000);
    eprintln!("p2c_ewma, 1000 requests: {counts:?}");
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    // Random choice would send 333 to the slow server.
    assert!(get("slow") <= 50, "{counts:?}");
    assert!(get("f1") >= 300 && get("f2") >= 300, "{counts:?}");
}

/// For every key `user-0..n`, the origin that answered a request carrying it in `X-User`.
fn owners(proxy: &Proxy, n: usize) -> Vec<String> {
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(proxy.addr())).collect();
    (0..n)
        .map(|k| {
            let req = format!("GET /k HTTP/1.1\r\nHost: t\r\nX-User: user-{k}\r\n\r\n");
            let r = clients[k % 4].request(&req);
            assert_eq!(r.status, 200);
            r.origin()
        })
        .collect()
}

#[test]
fn hash_is_consistent_and_removing_one_of_five_moves_few_keys() {
    let origins: Vec<Origin> = (0..5)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let keys = "balance = \"hash\"\nhash_key = \"header:x-user\"";
    let five = Proxy::start(&lb_config(keys, &weight1(&refs), "", ""));
    let before = owners(&five, 1000);
    assert_eq!(owners(&five, 1000), before, "same key, same server");
    for i in 0..5 {
        let n = before.iter().filter(|o| **o == format!("o{i}")).count();
        assert!((100..=300).contains(&n), "o{i} owns {n} of 1000 keys");
    }
    let four = Proxy::start(&lb_config(keys, &weight1(&refs[..4]), "", ""));
    let after = owners(&four, 1000);
    let moved: Vec<usize> = (0..1000).filter(|&k| before[k] != after[k]).collect();
    eprintln!(
        "hash: {} of 1000 keys moved when 1 of 5 servers left",
        moved.len()
    );
    assert!(moved.len() <= 250, "{} of 1000 keys moved", moved.len());
    assert!(
        moved.iter().all(|&k| before[k] == "o4"),
        "only the removed server's keys move"
    );
    assert_eq!(moved.len(), before.iter().filter(|o| *o == "o4").count());
}

#[test]
fn hash_on_client_ip_keeps_each_client_on_one_server() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let proxy = Proxy::start(&lb_config("balance = \"hash\"", &weight1(&refs), "", ""));
    let mut used = std::collections::HashSet::new();
    for last in 2..42u8 {
        let ip: IpAddr = format!("127.0.0.{last}").parse().unwrap();
        let seen: Vec<String> = (0..5)
            .map(|_| Client::connect_from(proxy.addr(), ip).get("/").origin())
            .collect();
        assert!(seen.iter().all(|o| *o == seen[0]), "{ip}: {seen:?}");
        used.insert(seen[0].clone());
    }
    assert_eq!(used.len(), 3, "40 client IPs spread over all servers");
}

#[test]
fn hash_on_path_and_on_a_cookie() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    for key in ["path", "cookie:sid"] {
        let keys = format!("balance = \"hash\"\nhash_key = \"{key}\"");
        let proxy = Proxy::start(&lb_config(&keys, &weight1(&refs), "", ""));
        let mut used = std::collections::HashSet::new();
        for k in 0..30 {
            let req = format!("GET /item/{k} HTTP/1.1\r\nHost: t\r\nCookie: a=1; sid=s{k}\r\n\r\n");
            let first = Client::connect(proxy.addr()).request(&req).origin();
            let again = Client::connect(proxy.addr()).request(&req).origin();
            assert_eq!(first, again, "{key}: key {k}");
            used.insert(first);
        }
        assert_eq!(used.len(), 3, "{key}: 30 keys spread over all servers");
    }
}

#[test]
fn sticky_cookie_keeps_a_client_on_one_server() {
    let origins: Vec<Origin> = (0..3)
        .map(|i| Origin::fixed(&format!("o{i}"), "x"))
        .collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let proxy = Proxy::start(&lb_config(
        "sticky_cookie = \"cg_route\"",
        &weight1(&refs),
        "",
        "",
    ));
    let mut c = Client::connect(proxy.addr());
    let first = c.get("/");
    let set = first
        .header("set-cookie")
        .expect("a sticky cookie")
        .to_string();
    let token = set
        .strip_prefix("cg_route=")
        .and_then(|v| v.split(';').next())
        .expect("cg_route=TOKEN; …")
        .to_string();
    assert!(set.contains("Path=/") && set.contains("HttpOnly"), "{set}");
    for o in &origins {
        let port = o.addr.port().to_string();
        assert!(!token.contains(&port), "the token is opaque: {token}");
    }
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: x=1; cg_route={token}\r\n\r\n");
    for _ in 0..50 {
        let mut fresh = Client::connect(proxy.addr());
        let r = fresh.request(&req);
        assert_eq!(r.origin(), first.origin());
        assert_eq!(
            r.header("set-cookie"),
            None,
            "already sticky: no new cookie"
        );
    }
    // Without the cookie, round robin rotates (and sets a cookie each time).
    let rotated: std::collections::HashSet<String> = (0..6).map(|_| c.get("/").origin()).collect();
    assert_eq!(rotated.len(), 3);
    // A forged or stale token is ignored and replaced.
    let r = c.request("GET / HTTP/1.1\r\nHost: t\r\nCookie: cg_route=0123456789abcdef\r\n\r\n");
    assert!(r.header("set-cookie").is_some());
}
