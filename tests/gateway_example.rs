//! config/gateway.toml, the worked example the README walks through, answers the README's
//! curl requests as documented (run here on a free port instead of 8080).

mod support;

use support::jwt::{self, Key, Spec};
use support::*;

#[test]
fn the_readme_walkthrough_works() {
    let port = free_port();
    let text = std::fs::read_to_string("config/gateway.toml").unwrap();
    let proxy = Proxy::start(&text.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")));
    let token = &jwt::sign(&[Spec::new(
        "HS256",
        Key::Secret("gateway-example-secret-change-me"),
        r#"{"sub":"alice","iss":"https://auth.example.com","aud":"api"}"#,
    )])[0];
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/healthz").text(), "ok\n");
    // per-ip allows 5 per 10 s (one token back every 2 s), then 429.
    let answers: Vec<Response> = (0..8).map(|_| c.get("/v1/users/42")).collect();
    let r = &answers[0];
    assert!(r.text().contains("\"version\":1"), "{}", r.text());
    assert_eq!(r.header("x-api-version"), Some("1"));
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert!(answers[..5].iter().all(|r| r.status == 200));
    let limited = answers.iter().find(|r| r.status == 429).expect("a 429");
    assert!(limited.header("retry-after").is_some());
    let r = c.get("/v2/users/42");
    assert_eq!(r.status, 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let r = c.request(&format!(
        "GET /v2/users/42 HTTP/1.1\r\nHost: h\r\n{bearer}\r\n"
    ));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"version\":2"));
    let r = c.request(&format!(
        "GET /users/42 HTTP/1.1\r\nHost: h\r\nAccept-Version: 2\r\n{bearer}\r\n"
    ));
    assert!(r.text().contains("\"version\":2"));
    let r = c.request("GET /v1/orders HTTP/1.1\r\nHost: h\r\nX-Api-Key: demo-key-123\r\n\r\n");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "[{\"id\":1,\"total\":42}]")
    );
    let r = c.request("DELETE /v1/orders HTTP/1.1\r\nHost: h\r\nX-Api-Key: demo-key-123\r\n\r\n");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, POST"))
    );
    let r = c.get("/v1/dashboard/42");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["user"]["version"], 1);
    assert_eq!(v["orders"][0]["total"], 42);
    let r = c.request("OPTIONS /v1/users/42 HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: GET\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Services are reachable only through the gateway.
    assert_eq!(c.get("/svc/orders").status, 404);
}
