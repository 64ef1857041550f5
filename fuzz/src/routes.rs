//! Router check: lookups agree with a brute-force reading of the documented precedence (exact
//! host, then the longest wildcard suffix, then any host; then the longest path prefix; then
//! file order), for route tables and requests built from the input.
//!
//! Input: lines separated by `\n`. Every line but the last is a route `host|prefix` (an empty
//! host means any host); the last line is the request `host|path`.

use coregate::router::{Action, HostMatch, Route, Router};

/// Routes in one table, so a lookup stays cheap.
const ROUTES_MAX: usize = 64;

pub fn router(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(query) = lines.pop() else { return };
    let Some((qhost, qpath)) = query.split_once('|') else {
        return;
    };
    let mut routes = Vec::new();
    for (i, line) in lines.iter().take(ROUTES_MAX).enumerate() {
        let Some((host, prefix)) = line.split_once('|') else {
            continue;
        };
        let host = if host.is_empty() {
            HostMatch::Any
        } else {
            match HostMatch::parse(host) {
                Some(h) => h,
                None => continue,
            }
        };
        if !prefix.starts_with('/') {
            continue;
        }
        routes.push(Route {
            name: i.to_string(),
            host,
            path_prefix: prefix.to_string(),
            action: Action::Proxy(0),
            retry_non_idempotent: false,
        });
    }
    let reference: Vec<(HostMatch, String, String)> = routes
        .iter()
        .map(|r| (r.host.clone(), r.path_prefix.clone(), r.name.clone()))
        .collect();
    let table = Router::new(routes);
    let got = table
        .route(qhost.as_bytes(), qpath.as_bytes())
        .map(|r| r.name.clone());
    assert_eq!(
        got,
        expected(&reference, qhost, qpath),
        "route for {query:?}"
    );
}

/// The winner by brute force: the matching route with the greatest (host rank, prefix length),
/// the first in file order among equals.
fn expected(routes: &[(HostMatch, String, String)], host: &str, path: &str) -> Option<String> {
    let host = host_without_port(host).to_ascii_lowercase();
    let mut best: Option<((u8, usize), usize, &str)> = None;
    for (host_match, prefix, name) in routes {
        let rank = match host_match {
            HostMatch::Any => (0, 0),
            HostMatch::Suffix(s) if host.len() > s.len() && host.ends_with(s.as_str()) => {
                (1, s.len())
            }
            HostMatch::Exact(h) if host == *h => (2, 0),
            _ => continue,
        };
        if !path.starts_with(prefix.as_str()) {
            continue;
        }
        let better = match best {
            None => true,
            Some((r, len, _)) => (rank, prefix.len()) > (r, len),
        };
        if better {
            best = Some((rank, prefix.len(), name));
        }
    }
    best.map(|(_, _, name)| name.to_string())
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}
