//! Operations helpers: the head of a config with the admin listener on, the admin listener's
//! address (from the start-up log), admin requests, and Prometheus scrapes parsed with a real
//! parser (`prometheus-parse`) after a strict check of the text format's layout.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{Client, Proxy, Response, DEADLINE};

/// The head of an operations test's config: `workers` shards, the admin listener on port 0
/// (with `admin_keys` in its table: a `token = ".."` line, or nothing) and the listener
/// "public" on port 0. The test's upstreams and routes follow it.
pub fn ops_head(workers: usize, admin_keys: &str) -> String {
    format!(
        "[server]\nworkers = {workers}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_keys}\n\
         [[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n"
    )
}

/// `ops_head`, then the upstream "app" over the one server `app`.
pub fn ops_head_app(workers: usize, admin_keys: &str, app: SocketAddr) -> String {
    format!(
        "{}[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{app}\"\n\n",
        ops_head(workers, admin_keys)
    )
}

/// The admin listener's address, as logged at start (`admin=IP:port`).
pub fn admin_addr(proxy: &Proxy) -> SocketAddr {
    let mut found = None;
    super::wait_until(DEADLINE, "the admin address in the log", || {
        found = proxy
            .log()
            .split_whitespace()
            .find_map(|t| t.strip_prefix("admin="))
            .and_then(|a| a.parse().ok());
        found.is_some()
    });
    found.unwrap()
}

/// One admin request on a fresh connection (the admin listener closes after each answer).
pub fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Response {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Client::connect(addr).request(&raw)
}

pub fn admin_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    admin(addr, "GET", path, token, "")
}

/// The admin answer's body as JSON.
pub fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// Scrape `/metrics`, check the layout, and parse it.
pub fn scrape(addr: SocketAddr, token: Option<&str>) -> prometheus_parse::Scrape {
    let r = admin_get(addr, "/metrics", token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    check_layout(&text);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("the scrape parses")
}

/// What a lenient parser would let through: every family announced once by HELP and TYPE
/// before its samples, its samples together, every name prefixed `coregate_`, every value a
/// number.
pub fn check_layout(text: &str) {
    let mut seen = HashSet::new();
    let mut current = String::new();
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name.starts_with("coregate_"), "unprefixed: {line}");
            assert!(
                seen.insert(name.to_string()),
                "family {name} announced twice"
            );
            current = name.to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            assert_eq!(
                it.next(),
                Some(current.as_str()),
                "TYPE without HELP: {line}"
            );
            kind = it.next().unwrap().to_string();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "{line}"
            );
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let base = if kind == "histogram" {
            name.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
        } else {
            name
        };
        assert_eq!(base, current, "sample outside its family: {line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value: {line}"
        );
    }
}

/// The sum over every series of `metric` (all shards) whose labels include `labels`.
pub fn sum(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    matching(s, metric, labels)
        .map(|v| match v {
            prometheus_parse::Value::Counter(x)
            | prometheus_parse::Value::Gauge(x)
            | prometheus_parse::Value::Untyped(x) => *x,
            other => panic!("{metric} is not a plain value: {other:?}"),
        })
        .sum()
}

/// Observations of histogram `metric` (all shards) whose labels include `labels`.
pub fn hist_count(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    matching(s, metric, labels)
        .map(|v| match v {
            prometheus_parse::Value::Histogram(b) => b
                .iter()
                .find(|c| c.less_than.is_infinite())
                .map_or(0.0, |c| c.count),
            other => panic!("{metric} is not a histogram: {other:?}"),
        })
        .sum()
}

/// Number of series of `metric`.
pub fn series(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> usize {
    matching(s, metric, labels).count()
}

fn matching<'a>(
    s: &'a prometheus_parse::Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a prometheus_parse::Value> + 'a {
    s.samples
        .iter()
        .filter(move |x| x.metric == metric)
        .filter(move |x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| &x.value)
}
