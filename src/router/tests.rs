use super::*;

fn route(name: &str, host: Option<&str>, path: PathMatch) -> Route {
    Route {
        name: name.into(),
        host: host.map_or(HostMatch::Any, |h| HostMatch::parse(h).unwrap()),
        path,
        methods: None,
        headers: Vec::new(),
        action: Action::Proxy(0),
        retry_non_idempotent: false,
        policy: RoutePolicy::default(),
    }
}

fn prefix(name: &str, host: Option<&str>, p: &str) -> Route {
    route(name, host, PathMatch::Prefix(p.into()))
}

fn pick(r: &Router, host: &str, path: &str) -> Option<String> {
    let req = RouteRequest {
        host: host.as_bytes(),
        path: path.as_bytes(),
        method: Method::Get,
        buf: path.as_bytes(),
        headers: &[],
    };
    match r.route(&req) {
        Lookup::Found(id, _) => Some(r.get(id).name.clone()),
        _ => None,
    }
}

#[test]
fn longest_prefix_wins_then_file_order() {
    let r = Router::new(vec![
        prefix("root", None, "/"),
        prefix("api", None, "/api"),
        prefix("api-v1", None, "/api/v1"),
        prefix("api-dup", None, "/api"),
    ])
    .unwrap();
    assert_eq!(pick(&r, "x", "/api/v1/users").as_deref(), Some("api-v1"));
    assert_eq!(pick(&r, "x", "/api/v2").as_deref(), Some("api"));
    assert_eq!(pick(&r, "x", "/apix").as_deref(), Some("api"));
    assert_eq!(pick(&r, "x", "/other").as_deref(), Some("root"));
}

#[test]
fn exact_host_beats_wildcard_beats_any() {
    let r = Router::new(vec![
        prefix("any", None, "/static"),
        prefix("wild", Some("*.example.com"), "/"),
        prefix("exact", Some("api.example.com"), "/"),
    ])
    .unwrap();
    assert_eq!(
        pick(&r, "api.example.com", "/static/x").as_deref(),
        Some("exact")
    );
    assert_eq!(
        pick(&r, "API.Example.com:8443", "/").as_deref(),
        Some("exact")
    );
    assert_eq!(
        pick(&r, "www.example.com", "/static").as_deref(),
        Some("wild")
    );
    assert_eq!(pick(&r, "a.b.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(pick(&r, "example.com", "/static").as_deref(), Some("any"));
    assert_eq!(pick(&r, "example.com", "/"), None);
}

#[test]
fn exact_then_pattern_then_prefix_with_params() {
    let pat = |p: &str, names: &[&str]| PathMatch::Pattern {
        pattern: p.into(),
        names: names.iter().map(|s| s.to_string()).collect(),
    };
    let r = Router::new(vec![
        prefix("users-prefix", None, "/users"),
        route("user", None, pat("/users/{id}", &["id"])),
        route("me", None, PathMatch::Exact("/users/me".into())),
        route("orders", None, pat("/users/{id}/orders", &["id"])),
    ])
    .unwrap();
    assert_eq!(pick(&r, "h", "/users/me").as_deref(), Some("me"));
    assert_eq!(pick(&r, "h", "/users/42").as_deref(), Some("user"));
    assert_eq!(pick(&r, "h", "/users/42/orders").as_deref(), Some("orders"));
    assert_eq!(
        pick(&r, "h", "/users/42/x").as_deref(),
        Some("users-prefix")
    );
    let path = b"/users/42/orders";
    let req = RouteRequest {
        host: b"h",
        path,
        method: Method::Get,
        buf: path,
        headers: &[],
    };
    let Lookup::Found(_, params) = r.route(&req) else {
        panic!("no match")
    };
    assert_eq!(params.len, 1);
    assert_eq!(params.spans[0].get(path), b"42");
}

#[test]
fn methods_refused_at_the_deciding_key_give_405_with_allow() {
    let mut get = prefix("get", None, "/items");
    get.methods = Some(MethodSet::parse(&["GET"]).unwrap());
    let mut post = prefix("post", None, "/items");
    post.methods = Some(MethodSet::parse(&["POST"]).unwrap());
    let r = Router::new(vec![get, post]).unwrap();
    let req = |m| RouteRequest {
        host: b"h",
        path: b"/items",
        method: m,
        buf: b"",
        headers: &[],
    };
    assert!(matches!(r.route(&req(Method::Post)), Lookup::Found(1, _)));
    let Lookup::MethodNotAllowed(allow) = r.route(&req(Method::Delete)) else {
        panic!("expected 405")
    };
    let mut out = Vec::new();
    allow.write(&mut out);
    assert_eq!(out, b"GET, HEAD, POST");
}

#[test]
fn conflicting_patterns_are_refused() {
    let pat = |p: &str| PathMatch::Pattern {
        pattern: p.into(),
        names: vec!["x".into()],
    };
    let err = Router::new(vec![
        route("a", None, pat("/u/{id}")),
        route("b", None, pat("/u/{name}")),
    ])
    .unwrap_err();
    assert_eq!(err.route, 1);
    // The same pattern twice shares one entry (e.g. different methods).
    assert!(Router::new(vec![
        route("a", None, pat("/u/{id}")),
        route("b", None, pat("/u/{id}"))
    ])
    .is_ok());
}

#[test]
fn host_forms() {
    assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
    assert_eq!(strip_port(b"h:1"), b"h");
    assert_eq!(strip_port(b"h"), b"h");
    assert!(HostMatch::parse("*.").is_none());
    assert!(HostMatch::parse("a..b").is_none());
    assert!(HostMatch::parse("a b").is_none());
    assert_eq!(
        HostMatch::parse("*.Ex.com"),
        Some(HostMatch::Suffix("ex.com".into()))
    );
}
