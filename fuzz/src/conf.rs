//! Config check: loading any text either fails with key-named errors or yields a config whose
//! invariants the request path relies on hold, and whose static responses are well-formed HTTP.
//!
//! Loading resolves `host:port` server addresses and reads TLS certificate files (at load, by
//! design). A fuzzer must not send DNS queries or read arbitrary files (`/dev/zero`), so inputs
//! holding a string value of the `host:port` shape, or any `tls` table, are skipped.

use std::net::SocketAddr;
use std::path::Path;

use coregate::config::defaults::HEADER_COUNT_LIMIT;
use coregate::http::response;
use coregate::router::Action;

pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(doc) = text.parse::<toml::Table>() {
        if doc.values().any(would_resolve) || doc.iter().any(|(k, v)| names_files(k, v)) {
            return;
        }
    }
    let cfg = match coregate::config::from_toml(text, Path::new("fuzz.toml")) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.errors.is_empty(), "a failed load names no error");
            for err in &e.errors {
                assert!(!err.key.is_empty() && !err.problem.is_empty(), "{err:?}");
            }
            return;
        }
    };
    let l = &cfg.limits;
    assert!(l.header_count_max >= 1 && l.header_count_max <= HEADER_COUNT_LIMIT);
    assert!(l.uri_bytes_max <= l.header_bytes_max);
    assert!(!cfg.listeners.is_empty());
    for u in &cfg.upstreams {
        assert!(!u.servers.is_empty(), "upstream {} without servers", u.name);
        assert!(u.servers.iter().all(|s| s.pool < cfg.pool_count));
    }
    for route in cfg.router.routes() {
        match &route.action {
            Action::Proxy(id) => assert!(*id < cfg.upstreams.len()),
            Action::Respond(r) => static_response_is_well_formed(r),
            Action::Aggregate(_) => {}
        }
    }
}

fn static_response_is_well_formed(r: &coregate::http::canned::StaticResponse) {
    for close in [false, true] {
        let bytes = r.bytes(close, false);
        let mut h = Vec::new();
        let head = match response::parse(bytes, false, 1 << 20, &mut h) {
            Ok(Some(head)) => head,
            other => panic!(
                "static response does not parse ({other:?}): {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        let body = match head.body {
            coregate::http::BodyKind::Length(n) => n as usize,
            coregate::http::BodyKind::None => 0,
            other => panic!("static response framed as {other:?}"),
        };
        assert_eq!(head.head_len + body, bytes.len(), "static response framing");
        assert_eq!(head.reusable, !close);
    }
}

/// A string value that config loading would try to resolve as `host:port`.
fn would_resolve(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => {
            s.parse::<SocketAddr>().is_err()
                && s.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
        }
        toml::Value::Array(a) => a.iter().any(would_resolve),
        toml::Value::Table(t) => t.values().any(would_resolve),
        _ => false,
    }
}

/// A `tls` table anywhere: loading it reads the files it names.
fn names_files(key: &str, v: &toml::Value) -> bool {
    if key == "tls" {
        return true;
    }
    match v {
        toml::Value::Array(a) => a.iter().any(|v| names_files("", v)),
        toml::Value::Table(t) => t.iter().any(|(k, v)| names_files(k, v)),
        _ => false,
    }
}
