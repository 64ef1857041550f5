//! CORS (preflight answered by coregate, fields on actual responses) and request aggregation
//! (concurrent parts, per-part timeout, partial and fail policies), over real sockets.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn cors_config(origin: &Origin) -> String {
    format!(
        r#"[[listener]]
listen = "127.0.0.1:0"

[[upstream]]
name = "app"
[[upstream.server]]
address = "{}"

[[auth]]
name = "keys"
kind = "api_key"
header = "x-api-key"
keys = {{ "k-1" = "web-app" }}

[[cors]]
name = "web"
allow_origins = ["https://app.example.com", "https://*.example.org"]
allow_methods = ["GET", "POST"]
allow_headers = ["authorization", "content-type", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age_s = 600

[[route]]
path_prefix = "/api"
upstream = "app"
auth = "keys"
cors = "web"
"#,
        origin.addr
    )
}

fn preflight(c: &mut Client, origin: &str, method: &str) -> Response {
    c.request(&format!(
        "OPTIONS /api/items HTTP/1.1\r\nHost: h\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
    ))
}

#[test]
fn preflight_is_answered_without_the_upstream_or_credentials() {
    let origin = Origin::start(|_| Reply::Bytes(response(200, &[("X-Request-Id", "r1")], b"ok")));
    let proxy = Proxy::start(&cors_config(&origin));
    let mut c = Client::connect(proxy.addr());
    let r = preflight(&mut c, "https://app.example.com", "POST");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, POST")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type, x-api-key")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = preflight(&mut c, "https://shop.example.org", "GET");
    assert_eq!(r.status, 204);
    assert_eq!(preflight(&mut c, "https://evil.test", "GET").status, 403);
    assert_eq!(
        preflight(&mut c, "https://app.example.com", "DELETE").status,
        403
    );
    assert_eq!(
        origin.request_count(),
        0,
        "preflights never reach the upstream"
    );
    // A plain OPTIONS (no Access-Control-Request-Method) is an ordinary request: auth applies.
    let r = c.request(
        "OPTIONS /api/items HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\n\r\n",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn actual_requests_get_cors_fields_for_allowed_origins_only() {
    let origin = Origin::start(|_| Reply::Bytes(response(200, &[("X-Request-Id", "r1")], b"ok")));
    let proxy = Proxy::start(&cors_config(&origin));
    let mut c = Client::connect(proxy.addr());
    let r = c.request("GET /api/items HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\nX-Api-Key: k-1\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    let r = c.request(
        "GET /api/items HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.test\r\nX-Api-Key: k-1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // An answer coregate gives itself (401) carries the CORS fields too, so the page can read it.
    let r =
        c.request("GET /api/items HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\n\r\n");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

fn aggregate_config(users: &Origin, orders: &Origin, broken: &Origin) -> String {
    format!(
        r#"[[listener]]
listen = "127.0.0.1:0"

[[upstream]]
name = "users"
[[upstream.server]]
address = "{}"
[[upstream]]
name = "orders"
[[upstream.server]]
address = "{}"
[[upstream]]
name = "broken"
[[upstream.server]]
address = "{}"

[[route]]
path = "/dash/{{id}}"
aggregate = [
  {{ key = "user", upstream = "users", path = "/users/{{id}}" }},
  {{ key = "orders", upstream = "orders", path = "/orders?user={{id}}", timeout_ms = 300 }},
  {{ key = "broken", upstream = "broken", path = "/x" }},
  {{ key = "text", upstream = "users", path = "/plain" }},
]

[[route]]
path = "/strict/{{id}}"
aggregate_on_error = "fail"
aggregate = [
  {{ key = "user", upstream = "users", path = "/users/{{id}}" }},
  {{ key = "orders", upstream = "orders", path = "/orders?user={{id}}", timeout_ms = 300 }},
]

[[route]]
path = "/ok/{{id}}"
aggregate_on_error = "fail"
aggregate = [
  {{ key = "a", upstream = "users", path = "/users/{{id}}" }},
  {{ key = "b", upstream = "users", path = "/users/{{id}}?again" }},
]
"#,
        users.addr, orders.addr, broken.addr
    )
}

fn origins() -> (Origin, Origin, Origin) {
    let users = Origin::start(|r| {
        if r.target == "/plain" {
            return Reply::Bytes(response(200, &[], b"not \"json\""));
        }
        let id = r.target.trim_start_matches("/users/");
        let body = format!("{{\"id\":\"{id}\",\"name\":\"Ada\"}}");
        Reply::Bytes(response(
            200,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ))
    });
    let orders =
        Origin::start(|_| Reply::Delayed(Duration::from_secs(5), response(200, &[], b"[]")));
    let broken = Origin::start(|_| Reply::Bytes(response(500, &[], b"boom")));
    (users, orders, broken)
}

#[test]
fn aggregation_returns_a_partial_answer_with_errors_in_place() {
    let (users, orders, broken) = origins();
    let proxy = Proxy::start(&aggregate_config(&users, &orders, &broken));
    let mut c = Client::connect(proxy.addr());
    let started = Instant::now();
    let r = c.get("/dash/7");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-aggregate-complete"), Some("false"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON answer");
    assert_eq!(v["user"], serde_json::json!({"id": "7", "name": "Ada"}));
    assert_eq!(v["orders"], serde_json::json!({"error": "timeout"}));
    assert_eq!(
        v["broken"],
        serde_json::json!({"error": "status", "status": 500})
    );
    assert_eq!(v["text"], serde_json::json!("not \"json\""));
    // The slow part's 300 ms timeout bounds the answer, not its 5 s delay.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(orders.wait_requests(1)[0].target, "/orders?user=7");
    // The connection stays usable.
    assert_eq!(c.get("/ok/8").status, 200);
}

#[test]
fn aggregation_fail_policy_and_concurrency() {
    let (users, orders, broken) = origins();
    let proxy = Proxy::start(&aggregate_config(&users, &orders, &broken));
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/strict/1").status, 504);
    let r = c.get("/ok/9");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-aggregate-complete"), None);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["a"]["id"], "9");
    assert_eq!(v["b"]["id"], "9?again");
    // Both parts were in flight at once: two upstream connections for one client request.
    assert!(
        users.connections() >= 2,
        "parts were called one after another"
    );
}
