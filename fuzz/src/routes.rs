//! Router check: lookups agree with a brute-force reading of the documented precedence (host
//! level: exact, then wildcard suffixes longest first, then any host, falling through when a
//! level has no answer; within a level: `path_exact`, then the longest `path_prefix`; among a
//! key's routes: more header conditions, more exact-valued ones, `methods` first, then file
//! order; 405 with the union of methods when only methods refuse), for route tables and
//! requests built from the input. `path` patterns (matchit) are left to the router's own tests.
//!
//! Input: lines separated by `\n`. Every line but the last is a route
//! `host|e or p|path|METHOD,METHOD|header or header=value` (empty host: any host; `e`: exact
//! path, else prefix; empty methods: all; empty header: no condition). The last line is the
//! request `host|METHOD|path|name:value;name:value`.

use coregate::gateway::RoutePolicy;
use coregate::http::request::Method;
use coregate::http::{HeaderKind, HeaderSpan, Span};
use coregate::router::{
    Action, HeaderCond, HostMatch, Lookup, MethodSet, PathMatch, Route, RouteRequest, Router,
};

/// Routes in one table, so a lookup stays cheap.
const ROUTES_MAX: usize = 64;

pub fn router(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(query) = lines.pop() else { return };
    let q: Vec<&str> = query.splitn(4, '|').collect();
    let [qhost, qmethod, qpath, qheaders] = q[..] else {
        return;
    };
    let routes: Vec<Route> = lines
        .iter()
        .take(ROUTES_MAX)
        .enumerate()
        .filter_map(|(i, l)| route(i, l))
        .collect();
    // The request's fields, as spans into one buffer.
    let mut buf = Vec::new();
    let mut headers = Vec::new();
    for field in qheaders.split(';').filter(|f| !f.is_empty()) {
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        let start = buf.len() as u32;
        buf.extend_from_slice(name.as_bytes());
        let mid = buf.len() as u32;
        buf.extend_from_slice(value.as_bytes());
        headers.push(HeaderSpan {
            name: Span { start, end: mid },
            value: Span {
                start: mid,
                end: buf.len() as u32,
            },
            kind: HeaderKind::of(name.as_bytes()),
        });
    }
    let req = RouteRequest {
        host: qhost.as_bytes(),
        path: qpath.as_bytes(),
        method: method(qmethod),
        buf: &buf,
        headers: &headers,
    };
    let want = expected(&routes, &req);
    let Ok(table) = Router::new(routes) else {
        return;
    };
    let got = match table.route(&req) {
        Lookup::Found(id, _) => Answer::Route(table.get(id).name.clone()),
        Lookup::MethodNotAllowed(m) => Answer::NotAllowed(m),
        Lookup::NotFound => Answer::NotFound,
    };
    assert_eq!(got, want, "lookup of {query:?}");
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Route(String),
    NotAllowed(MethodSet),
    NotFound,
}

fn route(i: usize, line: &str) -> Option<Route> {
    let f: Vec<&str> = line.splitn(5, '|').collect();
    let [host, kind, path, methods, header] = f[..] else {
        return None;
    };
    let host = match host {
        "" => HostMatch::Any,
        h => HostMatch::parse(h)?,
    };
    if !path.starts_with('/') {
        return None;
    }
    let path = match kind {
        "e" => PathMatch::Exact(path.to_string()),
        _ => PathMatch::Prefix(path.to_string()),
    };
    let methods = match methods {
        "" => None,
        m => Some(MethodSet::parse(&m.split(',').collect::<Vec<_>>()).ok()?),
    };
    let headers = match header {
        "" => Vec::new(),
        h => {
            let (name, value) = match h.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (h, None),
            };
            vec![HeaderCond {
                name: name.to_ascii_lowercase(),
                value,
            }]
        }
    };
    Some(Route {
        name: i.to_string(),
        host,
        path,
        methods,
        headers,
        action: Action::Proxy(0),
        retry_non_idempotent: false,
        policy: RoutePolicy::default(),
    })
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        "TRACE" => Method::Trace,
        _ => Method::Other,
    }
}

/// The answer by brute force over every route, level by level and key by key.
fn expected(routes: &[Route], req: &RouteRequest<'_>) -> Answer {
    let host = String::from_utf8_lossy(host_without_port(req.host)).to_ascii_lowercase();
    // Host names are looked up case-insensitively over at most 256 bytes; longer match none.
    let mut levels = Vec::new();
    if host.len() <= 256 {
        levels.push(HostMatch::Exact(host.clone()));
    }
    let mut rest = host.as_str();
    while let Some(dot) = rest.find('.') {
        rest = &rest[dot + 1..];
        if rest.len() <= 256 {
            levels.push(HostMatch::Suffix(rest.to_string()));
        }
    }
    levels.push(HostMatch::Any);
    for level in &levels {
        let in_level: Vec<&Route> = routes.iter().filter(|r| r.host == *level).collect();
        if let Some(answer) = level_answer(&in_level, req) {
            return answer;
        }
    }
    Answer::NotFound
}

/// Exact path first, then prefixes from the longest: the first key with an answer decides.
fn level_answer(routes: &[&Route], req: &RouteRequest<'_>) -> Option<Answer> {
    let exact: Vec<&Route> = routes
        .iter()
        .copied()
        .filter(|r| matches!(&r.path, PathMatch::Exact(p) if p.as_bytes() == req.path))
        .collect();
    if let Some(a) = decide(&exact, req) {
        return Some(a);
    }
    let mut lens: Vec<usize> = routes
        .iter()
        .filter_map(|r| match &r.path {
            PathMatch::Prefix(p) if req.path.starts_with(p.as_bytes()) => Some(p.len()),
            _ => None,
        })
        .collect();
    lens.sort_unstable_by(|a, b| b.cmp(a));
    lens.dedup();
    for len in lens {
        let key: Vec<&Route> = routes
            .iter()
            .copied()
            .filter(|r| matches!(&r.path, PathMatch::Prefix(p) if p.len() == len && req.path.starts_with(p.as_bytes())))
            .collect();
        if let Some(a) = decide(&key, req) {
            return Some(a);
        }
    }
    None
}

fn decide(key: &[&Route], req: &RouteRequest<'_>) -> Option<Answer> {
    let mut sorted = key.to_vec();
    sorted.sort_by_key(|r| {
        let exact = r.headers.iter().filter(|h| h.value.is_some()).count();
        std::cmp::Reverse((r.headers.len(), exact, r.methods.is_some()))
    });
    let mut refused = MethodSet::EMPTY;
    for r in sorted {
        let headers_ok = r.headers.iter().all(|c| {
            req.headers.iter().any(|h| {
                h.name.get(req.buf).eq_ignore_ascii_case(c.name.as_bytes())
                    && c.value
                        .as_ref()
                        .is_none_or(|v| h.value.get(req.buf) == v.as_bytes())
            })
        });
        if !headers_ok {
            continue;
        }
        match r.methods {
            Some(m) if !m.contains(req.method) => refused = refused.union(m),
            _ => return Some(Answer::Route(r.name.clone())),
        }
    }
    (!refused.is_empty()).then_some(Answer::NotAllowed(refused))
}

fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(c) => &host[..c],
        None => host,
    }
}
