//! Routing precedence, 405 + Allow, rewrites seen by the origin, versioned routes, header
//! transforms and direct responses: coregate binary, real origins, raw sockets.

mod support;

use support::*;

const LISTEN: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\n";

fn named(name: &str, matcher: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\n{matcher}\nrespond = {{ status = 200, body = \"{name}\" }}\n"
    )
}

fn table_config() -> String {
    let routes = [
        ("any-root", "path_prefix = \"/\""),
        ("any-api", "path_prefix = \"/api\""),
        ("any-api-v1", "path_prefix = \"/api/v1\""),
        ("exact-status", "path_exact = \"/status\""),
        ("user", "path = \"/users/{id}\""),
        ("user-orders", "path = \"/users/{id}/orders\""),
        ("users-me", "path_exact = \"/users/me\""),
        ("files", "path = \"/files/{*rest}\""),
        ("wild", "host = \"*.example.com\"\npath_prefix = \"/\""),
        ("wild-eu", "host = \"*.eu.example.com\"\npath_prefix = \"/\""),
        ("exact-host", "host = \"api.example.com\"\npath_prefix = \"/\""),
        (
            "exact-host-admin",
            "host = \"api.example.com\"\npath_prefix = \"/admin\"\nheaders = { \"x-admin\" = \"yes\" }",
        ),
        ("t-plain", "path_prefix = \"/t\""),
        ("t-any", "path_prefix = \"/t\"\nheaders = { \"x-tenant\" = \"*\" }"),
        ("t-acme", "path_prefix = \"/t\"\nheaders = { \"x-tenant\" = \"acme\" }"),
        ("items-get", "path_prefix = \"/items\"\nmethods = [\"GET\"]"),
        ("items-post", "path_prefix = \"/items\"\nmethods = [\"POST\"]"),
        ("svc-v2", "path_prefix = \"/svc\"\nheaders = { \"accept-version\" = \"v2\" }"),
        ("svc", "path_prefix = \"/svc\""),
        ("only-put", "path_exact = \"/put-only\"\nmethods = [\"PUT\"]"),
        ("wild-only", "host = \"*.internal.test\"\npath_exact = \"/x\""),
    ];
    let mut s = LISTEN.to_string();
    for (name, m) in routes {
        s.push_str(&named(name, m));
    }
    s
}

#[test]
fn precedence_table() {
    let proxy = Proxy::start(&table_config());
    // (method, host, path, extra fields, expected status, expected route)
    let cases: &[(&str, &str, &str, &str, u16, &str)] = &[
        ("GET", "h", "/", "", 200, "any-root"),
        ("GET", "h", "/nothing/here", "", 200, "any-root"),
        ("GET", "h", "/api", "", 200, "any-api"),
        ("GET", "h", "/apix", "", 200, "any-api"),
        ("GET", "h", "/api/v1/users", "", 200, "any-api-v1"),
        ("GET", "h", "/api/v2/users", "", 200, "any-api"),
        ("GET", "h", "/status", "", 200, "exact-status"),
        ("GET", "h", "/status/deep", "", 200, "any-root"),
        ("GET", "h", "/status?verbose=1", "", 200, "exact-status"),
        ("GET", "h", "/users/42", "", 200, "user"),
        ("GET", "h", "/users/me", "", 200, "users-me"),
        ("GET", "h", "/users/42/orders", "", 200, "user-orders"),
        ("GET", "h", "/users/42/other", "", 200, "any-root"),
        ("GET", "h", "/users", "", 200, "any-root"),
        ("GET", "h", "/files/a/b/c.css", "", 200, "files"),
        ("GET", "www.example.com", "/api", "", 200, "wild"),
        ("GET", "a.b.example.com", "/", "", 200, "wild"),
        ("GET", "x.eu.example.com", "/", "", 200, "wild-eu"),
        (
            "GET",
            "API.EXAMPLE.COM:8080",
            "/users/1",
            "",
            200,
            "exact-host",
        ),
        ("GET", "api.example.com", "/admin", "", 200, "exact-host"),
        (
            "GET",
            "api.example.com",
            "/admin",
            "X-Admin: yes\r\n",
            200,
            "exact-host-admin",
        ),
        (
            "GET",
            "api.example.com",
            "/admin",
            "X-Admin: no\r\n",
            200,
            "exact-host",
        ),
        ("GET", "example.com", "/api", "", 200, "any-api"),
        ("GET", "h", "/t", "", 200, "t-plain"),
        ("GET", "h", "/t", "X-Tenant: other\r\n", 200, "t-any"),
        ("GET", "h", "/t", "X-Tenant: acme\r\n", 200, "t-acme"),
        ("GET", "h", "/t", "x-tenant: ACME\r\n", 200, "t-any"),
        ("GET", "h", "/items", "", 200, "items-get"),
        ("HEAD", "h", "/items", "", 200, "items-get"),
        (
            "POST",
            "h",
            "/items/1",
            "Content-Length: 0\r\n",
            200,
            "items-post",
        ),
        ("DELETE", "h", "/items", "", 405, ""),
        ("GET", "h", "/svc/a", "", 200, "svc"),
        (
            "GET",
            "h",
            "/svc/a",
            "Accept-Version: v2\r\n",
            200,
            "svc-v2",
        ),
        ("GET", "h", "/svc/a", "Accept-Version: v3\r\n", 200, "svc"),
        (
            "PUT",
            "h",
            "/put-only",
            "Content-Length: 0\r\n",
            200,
            "only-put",
        ),
        ("GET", "h", "/put-only", "", 405, ""),
        ("GET", "h", "/put-only/x", "", 200, "any-root"),
        ("GET", "a.internal.test", "/x", "", 200, "wild-only"),
        ("GET", "a.internal.test", "/y", "", 200, "any-root"),
        ("GET", "internal.test", "/x", "", 200, "any-root"),
    ];
    let mut c = Client::connect(proxy.addr());
    for (method, host, path, extra, status, want) in cases {
        let r = c.request(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"
        ));
        let case = format!("{method} {host}{path} [{}]", extra.trim());
        assert_eq!(r.status, *status, "{case}");
        if *status == 200 && *method != "HEAD" {
            assert_eq!(r.text(), *want, "{case}");
        }
    }
    let r = c.request("DELETE /items HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    // 405 keeps the connection: the next request on it is served.
    assert_eq!(c.get("/status").text(), "exact-status");
}

#[test]
fn unmatched_is_404_and_405_drains_the_body() {
    let proxy = Proxy::start(&format!(
        "{LISTEN}{}",
        named("g", "path_prefix = \"/g\"\nmethods = [\"GET\"]")
    ));
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/nope").status, 404);
    // The body of a refused request is dropped, not parsed as the next request.
    let r = c.request("POST /g HTTP/1.1\r\nHost: h\r\nContent-Length: 31\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(c.get("/g").text(), "g");
}

#[test]
fn rewrites_and_versions_reach_the_right_origin() {
    let v1 = Origin::start(|r| {
        Reply::Bytes(response(
            200,
            &[("X-Origin", "v1"), ("X-Target", &r.target)],
            b"",
        ))
    });
    let v2 = Origin::start(|r| {
        Reply::Bytes(response(
            200,
            &[("X-Origin", "v2"), ("X-Target", &r.target)],
            b"",
        ))
    });
    let cfg = format!(
        r#"{LISTEN}
[[upstream]]
name = "v1"
[[upstream.server]]
address = "{}"
[[upstream]]
name = "v2"
[[upstream.server]]
address = "{}"

[[route]]
path_prefix = "/v1/"
upstream = "v1"
strip_prefix = "/v1"

[[route]]
path_prefix = "/v2/"
upstream = "v2"
replace_prefix = "/internal/"

[[route]]
path = "/accounts/{{id}}/orders/{{*rest}}"
upstream = "v1"
rewrite = "/o/{{id}}/{{rest}}"

[[route]]
path_prefix = "/api"
headers = {{ "accept-version" = "2" }}
upstream = "v2"

[[route]]
path_prefix = "/api"
upstream = "v1"
"#,
        v1.addr, v2.addr
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(proxy.addr());
    let cases = [
        ("/v1/users/7?x=1", "", "v1", "/users/7?x=1"),
        ("/v2/users/7?x=1", "", "v2", "/internal/users/7?x=1"),
        (
            "/accounts/9/orders/2024/05?s=a",
            "",
            "v1",
            "/o/9/2024/05?s=a",
        ),
        ("/api/items", "", "v1", "/api/items"),
        ("/api/items", "Accept-Version: 2\r\n", "v2", "/api/items"),
    ];
    for (path, extra, origin, target) in cases {
        let r = c.request(&format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n"));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-origin"), Some(origin), "{path}");
        assert_eq!(r.header("x-target"), Some(target), "{path}");
    }
    let seen: Vec<String> = v1.received().iter().map(|r| r.target.clone()).collect();
    assert_eq!(seen, ["/users/7?x=1", "/o/9/2024/05?s=a", "/api/items"]);
}

#[test]
fn header_transforms_both_ways() {
    let origin = Origin::start(|_| {
        Reply::Bytes(response(
            200,
            &[
                ("Server", "secret/1.0"),
                ("X-Powered-By", "php"),
                ("X-Keep", "1"),
            ],
            b"ok",
        ))
    });
    let cfg = format!(
        r#"{LISTEN}
[[upstream]]
name = "app"
[[upstream.server]]
address = "{}"

[[route]]
name = "orders"
path = "/users/{{id}}/orders"
upstream = "app"
request_headers = {{ set = {{ "x-user-id" = "${{param.id}}", "x-client" = "ip=${{client_ip}}" }}, add = {{ "x-route" = "${{route}}" }}, remove = ["x-debug"] }}
response_headers = {{ remove = ["server", "x-powered-by"], set = {{ "x-served-by" = "coregate" }} }}
"#,
        origin.addr
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(proxy.addr());
    let r = c.request("GET /users/42/orders HTTP/1.1\r\nHost: h\r\nX-User-Id: forged\r\nX-Debug: 1\r\nX-Route: mine\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-powered-by"), None);
    assert_eq!(r.header("x-keep"), Some("1"));
    assert_eq!(r.header("x-served-by"), Some("coregate"));
    let got = &origin.wait_requests(1)[0];
    assert_eq!(got.header_count("x-user-id"), 1);
    assert_eq!(got.header("x-user-id"), Some("42"));
    assert_eq!(got.header("x-client"), Some("ip=127.0.0.1"));
    assert_eq!(got.header("x-debug"), None);
    // `add` keeps the client's field and adds ours.
    assert_eq!(got.header_count("x-route"), 2);
}

#[test]
fn direct_responses_for_health_and_maintenance() {
    let cfg = format!(
        r#"{LISTEN}
[[route]]
path_exact = "/healthz"
respond = {{ status = 200, body = "ok", content_type = "text/plain" }}
response_headers = {{ set = {{ "cache-control" = "no-store" }} }}

[[route]]
path_prefix = "/"
respond = {{ status = 503, body = "{{\"maintenance\":true}}", content_type = "application/json" }}
"#
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(proxy.addr());
    let r = c.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = c.get("/orders");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "{\"maintenance\":true}");
    let r = c.request("HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.status, r.header("content-length")), (200, Some("2")));
}
