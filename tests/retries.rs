//! Retries on another server: what moves (connect failures; resets before any response byte
//! for idempotent methods), what does not (POST by default), how many times, and the retry
//! budget that keeps retries from multiplying an outage.

mod support;

use std::net::SocketAddr;

use support::*;

/// An origin that reads each request and closes without answering.
fn black_hole() -> Origin {
    Origin::start(|_| Reply::Close)
}

/// Nearly every first pick goes to `first` (smooth weighted round robin, 1000:1), so a retry
/// is what reaches `second`. `route_keys` go on the route.
fn config(first: SocketAddr, second: SocketAddr, keys: &str, route_keys: &str) -> String {
    format!(
        "[server]\nworkers = 1\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
[[upstream]]\nname = \"app\"\nbalance = \"weighted\"\n{keys}\n\
[[upstream.server]]\naddress = \"{first}\"\nweight = 1000\n\
[[upstream.server]]\naddress = \"{second}\"\nweight = 1\n\
[[route]]\nupstream = \"app\"\n{route_keys}\n"
    )
}

const POST: &str = "POST /order HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn get_moves_to_another_server_but_post_is_not_retried_by_default() {
    for driver in [Driver::Auto, Driver::Legacy] {
        let (hole, good) = (black_hole(), Origin::fixed("good", "ok"));
        let proxy = Proxy::start_with(&config(hole.addr, good.addr, "", ""), driver);
        let mut c = Client::connect(proxy.addr());
        let r = c.request(POST);
        assert_eq!(r.status, 502, "{driver:?}");
        assert_eq!(hole.wait_requests(1).len(), 1);
        assert_eq!(good.request_count(), 0, "the POST was not sent twice");

        let r = c.get("/item");
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(r.origin(), "good");
        assert_eq!(hole.count_to("/item"), 1);
        assert_eq!(good.count_to("/item"), 1);
    }
}

#[test]
fn a_route_may_allow_retrying_post() {
    let (hole, good) = (black_hole(), Origin::fixed("good", "ok"));
    let cfg = config(hole.addr, good.addr, "", "retry_non_idempotent = true");
    let proxy = Proxy::start(&cfg);
    let r = Client::connect(proxy.addr()).request(POST);
    assert_eq!(r.status, 200);
    assert_eq!(hole.count_to("/order"), 1);
    let got = good.wait_requests(1);
    assert_eq!(got[0].body, b"hello", "the body went out again in full");
}

#[test]
fn a_connect_failure_moves_even_a_post() {
    let good = Origin::echo();
    let proxy = Proxy::start(&config(closed_port(), good.addr, "", ""));
    let r = Client::connect(proxy.addr()).request(POST);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(good.request_count(), 1);
}

#[test]
fn retries_stop_at_the_configured_count() {
    for retries in [0usize, 1, 2] {
        let holes: Vec<Origin> = (0..3).map(|_| black_hole()).collect();
        let refs: Vec<&Origin> = holes.iter().collect();
        let keys = format!("retries = {retries}");
        let proxy = Proxy::start(&lb_config(&keys, &weight1(&refs), "", ""));
        let mut c = Client::connect(proxy.addr());
        for _ in 0..10 {
            assert_eq!(c.get("/").status, 502);
        }
        let attempts: usize = holes.iter().map(Origin::request_count).sum();
        assert_eq!(attempts, 10 * (1 + retries), "retries = {retries}");
    }
}

#[test]
fn the_retry_budget_caps_retries_at_a_share_of_requests() {
    for (percent, want) in [(20, 120), (100, 200)] {
        let holes: Vec<Origin> = (0..2).map(|_| black_hole()).collect();
        let refs: Vec<&Origin> = holes.iter().collect();
        let keys =
            format!("retries = 1\nretry_budget_percent = {percent}\nretry_budget_min_per_s = 0");
        let cfg = lb_config(&keys, &weight1(&refs), "", "[server]\nworkers = 1\n");
        let proxy = Proxy::start(&cfg);
        let mut c = Client::connect(proxy.addr());
        for _ in 0..100 {
            assert_eq!(c.get("/").status, 502);
        }
        let attempts: usize = holes.iter().map(Origin::request_count).sum();
        eprintln!("retry budget {percent}%: 100 failing requests made {attempts} attempts");
        assert!(
            attempts <= want && attempts + 5 >= want,
            "budget {percent}%: {attempts} attempts for 100 requests"
        );
    }
}

#[test]
fn a_retried_http10_request_without_host_names_the_new_server() {
    let (hole, good) = (black_hole(), Origin::fixed("good", "ok"));
    let proxy = Proxy::start(&config(hole.addr, good.addr, "", ""));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        hole.received()[0].header("host"),
        Some(&*hole.addr.to_string())
    );
    assert_eq!(
        good.received()[0].header("host"),
        Some(&*good.addr.to_string())
    );
}
