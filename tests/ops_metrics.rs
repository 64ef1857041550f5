//! Metrics: a scrape of `/metrics` parses with a real Prometheus parser, and its counters match
//! the traffic sent (requests by route and status class, per server, durations, connections,
//! bytes, rate limits, auth failures, pool reuse, retries, ejections, health, unavailability).

mod support;

use std::net::SocketAddr;

use support::ops::{admin_addr, hist_count, ops_head, ops_head_app, scrape, series, sum};
use support::*;

fn config(app: SocketAddr) -> String {
    let head = ops_head_app(2, "", app);
    format!(
        r#"{head}
[[auth]]
name = "keys"
kind = "api_key"
header = "x-api-key"
keys = {{ "key-1" = "alice" }}

[[rate_limit]]
name = "one"
key = "route"
rate = 1
period_ms = 60000

[[route]]
name = "api"
path_prefix = "/api"
upstream = "app"

[[route]]
name = "static"
path_prefix = "/static"
respond = {{ status = 200, body = "static" }}

[[route]]
name = "limited"
path_prefix = "/limited"
rate_limit = "one"
respond = {{ status = 200, body = "ok" }}

[[route]]
name = "secure"
path_prefix = "/secure"
auth = "keys"
respond = {{ status = 200, body = "ok" }}
"#
    )
}

/// Send `n` GETs to `path` on one keep-alive connection; returns the request bytes sent.
fn send(proxy: SocketAddr, path: &str, n: usize, want: u16) -> usize {
    let mut c = Client::connect(proxy);
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    for _ in 0..n {
        assert_eq!(c.request(&raw).status, want, "{path}");
    }
    raw.len() * n
}

#[test]
fn scrape_parses_and_counters_match_the_traffic() {
    let origin = Origin::fixed("app", "from-app");
    let proxy = Proxy::start(&config(origin.addr));
    let admin = admin_addr(&proxy);
    let p = proxy.addr();
    let mut bytes = 0;
    for _ in 0..4 {
        bytes += send(p, "/api/x", 5, 200);
    }
    bytes += send(p, "/static", 7, 200);
    bytes += send(p, "/nothing", 3, 404);
    bytes += send(p, "/limited", 1, 200);
    bytes += send(p, "/limited", 2, 429);
    bytes += send(p, "/secure", 2, 401);
    let connections = 4 + 1 + 1 + 1 + 1 + 1;
    // The last connection's counters are settled once it is closed and counted out.
    wait_until(DEADLINE, "connections closed", || {
        sum(&scrape(admin, None), "coregate_connections_active", &[]) == 0.0
    });
    let s = scrape(admin, None);

    let req = |route: &str, class: &str| {
        sum(
            &s,
            "coregate_requests_total",
            &[("route", route), ("status_class", class)],
        )
    };
    assert_eq!(req("api", "2xx"), 20.0);
    assert_eq!(
        sum(
            &s,
            "coregate_requests_total",
            &[("route", "api"), ("upstream", "app")]
        ),
        20.0
    );
    assert_eq!(req("static", "2xx"), 7.0);
    assert_eq!(req("", "4xx"), 3.0, "requests without a route");
    assert_eq!(req("limited", "2xx"), 1.0);
    assert_eq!(req("limited", "4xx"), 2.0);
    assert_eq!(req("secure", "4xx"), 2.0);
    assert_eq!(sum(&s, "coregate_requests_total", &[]), 35.0);
    assert_eq!(
        sum(&s, "coregate_rate_limited_total", &[("route", "limited")]),
        2.0
    );
    assert_eq!(
        sum(&s, "coregate_auth_failures_total", &[("route", "secure")]),
        2.0
    );
    assert_eq!(
        hist_count(&s, "coregate_request_duration_seconds", &[("route", "api")]),
        20.0
    );
    assert_eq!(
        hist_count(&s, "coregate_request_duration_seconds", &[]),
        35.0
    );

    let server = origin.addr.to_string();
    let srv = [("upstream", "app"), ("server", server.as_str())];
    let mut ok = srv.to_vec();
    ok.push(("status_class", "2xx"));
    assert_eq!(sum(&s, "coregate_upstream_responses_total", &ok), 20.0);
    assert_eq!(
        hist_count(&s, "coregate_upstream_duration_seconds", &srv),
        20.0
    );
    let opened = sum(&s, "coregate_upstream_connections_opened_total", &srv);
    let reused = sum(&s, "coregate_upstream_connections_reused_total", &srv);
    assert_eq!(
        opened + reused,
        20.0,
        "every attempt opened or reused a connection"
    );
    assert!(
        opened >= 1.0 && reused > opened,
        "opened {opened}, reused {reused}"
    );
    assert_eq!(
        opened as usize,
        origin.connections(),
        "the origin saw every connection opened"
    );
    assert_eq!(sum(&s, "coregate_upstream_failures_total", &[]), 0.0);
    assert_eq!(
        sum(&s, "coregate_upstream_server_up", &srv),
        2.0,
        "up on both shards"
    );
    assert_eq!(sum(&s, "coregate_upstream_in_flight", &srv), 0.0);

    assert_eq!(
        sum(
            &s,
            "coregate_connections_accepted_total",
            &[("listener", "public")]
        ),
        connections as f64
    );
    assert_eq!(sum(&s, "coregate_received_bytes_total", &[]), bytes as f64);
    assert!(sum(&s, "coregate_sent_bytes_total", &[]) > (20 * "from-app".len()) as f64);
    assert_eq!(series(&s, "coregate_shard_info", &[]), 2, "one per shard");
    assert_eq!(series(&s, "coregate_requests_active", &[("shard", "1")]), 1);
    assert_eq!(
        sum(
            &s,
            "coregate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(
        s.docs.contains_key("coregate_requests_total"),
        "HELP text is there"
    );
}

#[test]
fn retries_ejections_health_and_unavailability_are_counted() {
    let good = Origin::fixed("good", "ok");
    let dead = closed_port();
    let checked = closed_port();
    let toml = format!(
        r#"{head}
[[upstream]]
name = "app"
retries = 1
[[upstream.server]]
address = "{dead}"
[[upstream.server]]
address = "{good}"
[upstream.outlier]
consecutive_failures = 2
base_ejection_ms = 300000

[[upstream]]
name = "checked"
[[upstream.server]]
address = "{checked}"
[upstream.health]
interval_ms = 20
timeout_ms = 200
unhealthy_threshold = 1

[[route]]
name = "app"
path_prefix = "/app"
upstream = "app"

[[route]]
name = "checked"
path_prefix = "/checked"
upstream = "checked"
"#,
        head = ops_head(1, ""),
        good = good.addr
    );
    let proxy = Proxy::start(&toml);
    let admin = admin_addr(&proxy);
    let mut c = Client::connect(proxy.addr());
    for _ in 0..10 {
        assert_eq!(c.get("/app").status, 200, "a retry hides the dead server");
    }
    let dead_s = dead.to_string();
    let d = [("upstream", "app"), ("server", dead_s.as_str())];
    let s = scrape(admin, None);
    let failures = sum(&s, "coregate_upstream_failures_total", &d);
    assert!(failures >= 1.0, "{failures}");
    assert_eq!(
        sum(&s, "coregate_retries_total", &[("upstream", "app")]),
        failures
    );
    assert_eq!(sum(&s, "coregate_ejections_total", &d), 1.0);
    assert_eq!(sum(&s, "coregate_upstream_server_ejected", &d), 1.0);
    assert_eq!(
        sum(
            &s,
            "coregate_requests_total",
            &[("route", "app"), ("status_class", "2xx")]
        ),
        10.0
    );

    let checked_s = checked.to_string();
    let ch = [("upstream", "checked"), ("server", checked_s.as_str())];
    wait_until(DEADLINE, "the active check takes the server down", || {
        sum(&scrape(admin, None), "coregate_upstream_server_up", &ch) == 0.0
    });
    assert_eq!(c.get("/checked").status, 503);
    let s = scrape(admin, None);
    assert_eq!(
        sum(
            &s,
            "coregate_upstream_unavailable_total",
            &[("upstream", "checked")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "coregate_requests_total",
            &[("route", "checked"), ("status_class", "5xx")]
        ),
        1.0
    );
}

#[test]
fn metrics_on_the_legacy_driver() {
    let origin = Origin::fixed("app", "x");
    let proxy = Proxy::start_with(&config(origin.addr), Driver::Legacy);
    let admin = admin_addr(&proxy);
    send(proxy.addr(), "/api", 3, 200);
    let s = scrape(admin, None);
    assert_eq!(sum(&s, "coregate_requests_total", &[("route", "api")]), 3.0);
    assert_eq!(
        series(&s, "coregate_shard_info", &[("driver", "legacy (epoll)")]),
        2
    );
}
