//! The admin API: status, running config with secrets redacted, upstreams with health and
//! in-flight counts gathered from the shards, cache purge (501 without a cache), unknown paths
//! and methods, and the bearer token.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::ops::{admin, admin_addr, admin_get, json, ops_head_app};
use support::*;

const JWT_SECRET: &str = "jwt-secret-do-not-show";
const API_KEY: &str = "api-key-do-not-show";
const TOKEN: &str = "admin-token-do-not-show";

fn config(app: SocketAddr, token: &str) -> String {
    let head = ops_head_app(2, &format!("token = \"{token}\""), app);
    format!(
        r#"{head}
[[auth]]
name = "jwt"
kind = "jwt"
algorithms = ["HS256"]
secret = "{JWT_SECRET}"

[[auth]]
name = "keys"
kind = "api_key"
header = "x-api-key"
keys = {{ "{API_KEY}" = "consumer-alice" }}

[[route]]
name = "app"
path_prefix = "/"
upstream = "app"
request_headers = {{ set = {{ "authorization" = "Bearer upstream-credential-do-not-show" }} }}
"#
    )
}

#[test]
fn status_config_upstreams_and_purge() {
    let origin = Origin::start(|r| {
        let delay = if r.target == "/slow" { 1500 } else { 0 };
        Reply::Delayed(Duration::from_millis(delay), response(200, &[], b"ok"))
    });
    let proxy = Proxy::start(&config(origin.addr, TOKEN));
    let a = admin_addr(&proxy);
    let t = Some(TOKEN);

    let status = json(&admin_get(a, "/status", t));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["shards"], 2);
    assert_eq!(status["generation"], 0);
    assert!(["io_uring", "io_uring (no setup flags)", "legacy (epoll)"]
        .contains(&status["driver"].as_str().unwrap()));
    assert!(status["uptime_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(status["shard_status"].as_array().unwrap().len(), 2);
    assert_eq!(status["listeners"][0]["name"], "public");
    assert_eq!(status["listeners"][0]["addr"], proxy.addr().to_string());

    let r = admin_get(a, "/config", t);
    assert_eq!(r.status, 200);
    let text = r.text();
    for secret in [
        JWT_SECRET,
        API_KEY,
        TOKEN,
        "upstream-credential-do-not-show",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let cfg = json(&r);
    assert_eq!(
        cfg["upstream"][0]["server"][0]["address"],
        origin.addr.to_string()
    );
    assert_eq!(cfg["auth"][1]["keys"]["<redacted> 1"], "consumer-alice");

    // A request in flight shows in /upstreams (gathered from the shard that has it).
    let p = proxy.addr();
    let slow = std::thread::spawn(move || Client::connect(p).get("/slow").status);
    let server = origin.addr.to_string();
    let in_flight = |a| {
        let u = json(&admin_get(a, "/upstreams", t));
        assert_eq!(u["upstreams"][0]["name"], "app");
        let s = &u["upstreams"][0]["servers"][0];
        assert_eq!(s["address"], server);
        assert_eq!(s["health"], "up");
        assert_eq!(s["shards"].as_array().unwrap().len(), 2);
        s["in_flight"].as_u64().unwrap()
    };
    wait_until(DEADLINE, "one request in flight", || in_flight(a) == 1);
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(in_flight(a), 0);

    let purge = admin(a, "POST", "/cache/purge", t, "");
    assert_eq!(purge.status, 501);
    assert_eq!(json(&purge)["error"], "no cache configured");
    assert_eq!(admin(a, "POST", "/cache/purge", t, "{bad").status, 400);
    assert_eq!(admin_get(a, "/nope", t).status, 404);
    let wrong = admin(a, "POST", "/status", t, "");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET"));
    assert_eq!(admin_get(a, "/reload", t).header("allow"), Some("POST"));
}

#[test]
fn the_admin_token_is_enforced_and_follows_reloads() {
    let origin = Origin::fixed("app", "ok");
    let proxy = Proxy::start(&config(origin.addr, TOKEN));
    let a = admin_addr(&proxy);
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/status"),
        ("GET", "/config"),
        ("GET", "/upstreams"),
        ("POST", "/reload"),
        ("POST", "/cache/purge"),
    ] {
        let none = admin(a, method, path, None, "");
        assert_eq!(none.status, 401, "{path} without a token");
        assert!(none
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(
            admin(a, method, path, Some("wrong"), "").status,
            401,
            "{path}"
        );
        let raw =
            format!("{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Basic {TOKEN}\r\n\r\n");
        assert_eq!(
            Client::connect(a).request(&raw).status,
            401,
            "{path}: Basic"
        );
    }
    assert_eq!(admin_get(a, "/status", Some(TOKEN)).status, 200);
    // A reload with another token: the new one is required from then on.
    proxy.write_config(&config(origin.addr, "second-token"));
    assert_eq!(admin(a, "POST", "/reload", Some(TOKEN), "").status, 200);
    assert_eq!(admin_get(a, "/status", Some(TOKEN)).status, 401);
    assert_eq!(admin_get(a, "/status", Some("second-token")).status, 200);
    // The proxy itself never asks for the admin token.
    assert_eq!(Client::connect(proxy.addr()).get("/").status, 200);
}

#[test]
fn without_a_token_the_admin_api_is_open_and_without_admin_there_is_none() {
    let origin = Origin::fixed("app", "ok");
    let toml = simple_config(&[origin.addr], "[admin]\nlisten = \"127.0.0.1:0\"\n");
    let proxy = Proxy::start(&toml);
    let a = admin_addr(&proxy);
    assert_eq!(admin_get(a, "/status", None).status, 200);
    let plain = Proxy::start(&simple_config(&[origin.addr], ""));
    assert!(plain.log().contains("admin API: off"), "{}", plain.log());
    assert!(!plain.log().contains("admin="));
}
