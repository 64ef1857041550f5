//! The admin endpoints' answers: gather what every shard knows by message (bounded by a
//! deadline: a stalled shard is reported missing, never waited for), merge it, render it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::http::Response;
use super::Admin;
use crate::metrics::{labels, Families};
use crate::shard::{Control, PurgeFilter, PurgeResult, ShardView};

/// Longest wait for the shards' answers.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Object keys whose values are secrets, anywhere in the config (compared in lower case).
const SECRET_KEYS: [&str; 8] = [
    "secret",
    "token",
    "password",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];
const REDACTED: &str = "<redacted>";

/// Ask every shard with `msg(reply)` and collect the answers that arrive in time.
async fn gather<T>(admin: &Admin, msg: impl Fn(flume::Sender<T>) -> Control) -> Vec<T> {
    let (tx, rx) = flume::bounded(admin.shards.len());
    for s in &admin.shards {
        let _ = s.try_send(msg(tx.clone()));
    }
    drop(tx);
    let mut out = Vec::with_capacity(admin.shards.len());
    let collect = async {
        while let Ok(v) = rx.recv_async().await {
            out.push(v);
        }
    };
    let _ = monoio::time::timeout(GATHER_TIMEOUT, collect).await;
    out
}

pub(super) async fn metrics(admin: &Admin) -> Response {
    let shards = gather(admin, Control::Metrics).await;
    let missing = admin.shards.len() - shards.len();
    let mut all = Families::default();
    process_metrics(admin, missing, &mut all);
    for f in shards {
        all.merge(f);
    }
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        extra: Vec::new(),
        body: all.render().into_bytes(),
    }
}

fn process_metrics(admin: &Admin, missing: usize, out: &mut Families) {
    let u = admin.current.borrow();
    let none = labels(&[]);
    out.gauge(
        "coregate_build_info",
        "Always 1; the version label names the running build.",
        &labels(&[("version", env!("CARGO_PKG_VERSION"))]),
        1.0,
    );
    out.gauge(
        "coregate_uptime_seconds",
        "Seconds since the process started.",
        &none,
        admin.started.elapsed().as_secs_f64(),
    );
    out.gauge(
        "coregate_shards",
        "Shards (one thread per core) running.",
        &none,
        admin.shards.len() as f64,
    );
    out.gauge(
        "coregate_scrape_shards_missing",
        "Shards that did not answer this scrape in time (their series are missing).",
        &none,
        missing as f64,
    );
    let reloads = "Config reloads (SIGHUP or POST /reload) by result.";
    out.counter(
        "coregate_config_reloads_total",
        reloads,
        &labels(&[("result", "ok")]),
        u.reloads_ok,
    );
    out.counter(
        "coregate_config_reloads_total",
        reloads,
        &labels(&[("result", "rejected")]),
        u.reloads_failed,
    );
}

pub(super) async fn status(admin: &Admin) -> Response {
    let mut views = gather(admin, Control::Inspect).await;
    views.sort_by_key(|v| v.id);
    let u = admin.current.borrow().clone();
    let mut drivers: Vec<&str> = views.iter().map(|v| v.driver).collect();
    drivers.dedup();
    let driver = match drivers.as_slice() {
        [one] => *one,
        [] => "unknown",
        _ => "mixed",
    };
    let started = SystemTime::now()
        .checked_sub(admin.started.elapsed())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Response::json(
        200,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": admin.started.elapsed().as_secs_f64(),
            "started_at_unix_s": started,
            "config": u.config.source.display().to_string(),
            "generation": u.gen,
            "shards": admin.shards.len(),
            "driver": driver,
            "shard_status": views.iter().map(|v| json!({
                "id": v.id,
                "driver": v.driver,
                "generation": v.gen,
                "connections": v.connections,
                "requests_active": v.requests_active,
            })).collect::<Vec<_>>(),
            "listeners": u.listeners.iter().map(|(name, addr)| json!({
                "name": name,
                "addr": addr.to_string(),
            })).collect::<Vec<_>>(),
            "routes": u.config.router.routes().len(),
            "upstreams": u.config.upstreams.len(),
            "reloads": {
                "ok": u.reloads_ok,
                "rejected": u.reloads_failed,
                "last_errors": u.last_reload_errors,
            },
        }),
    )
}

pub(super) fn config(admin: &Admin) -> Response {
    let doc = admin.current.borrow().config.document.clone();
    let mut v = serde_json::to_value(doc).unwrap_or(Value::Null);
    redact(&mut v);
    Response::json(200, &v)
}

/// Replace secret values (by key name) with a marker, API keys (the keys of an `[[auth]]`
/// `keys` table) included, and the password of URLs such as `redis://user:pass@host`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let key = k.to_ascii_lowercase();
                if SECRET_KEYS.contains(&key.as_str()) {
                    *val = Value::String(REDACTED.into());
                } else if key == "keys" {
                    redact_keys(val);
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(redact),
        Value::String(s) => {
            if let Some(clean) = url_without_password(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// `{ "k-123" = "consumer-a" }` → `{ "<redacted 1>" = "consumer-a" }`.
fn redact_keys(v: &mut Value) {
    if let Value::Object(map) = v {
        let consumers: Vec<Value> = std::mem::take(map).into_iter().map(|(_, c)| c).collect();
        let mut out = Map::new();
        for (i, c) in consumers.into_iter().enumerate() {
            out.insert(format!("{REDACTED} {}", i + 1), c);
        }
        *map = out;
    }
}

fn url_without_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    if userinfo.contains('/') {
        return None; // an @ in the path, not credentials
    }
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{REDACTED}@{host}"))
}

pub(super) async fn upstreams(admin: &Admin) -> Response {
    let views = gather(admin, Control::Inspect).await;
    let u = admin.current.borrow().clone();
    let list: Vec<Value> = u
        .config
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, up)| {
            let servers: Vec<Value> = up
                .servers
                .iter()
                .enumerate()
                .map(|(j, s)| server_json(&views, i, &up.name, j, &s.address, s.weight))
                .collect();
            json!({ "name": up.name, "servers": servers })
        })
        .collect();
    Response::json(200, &json!({ "generation": u.gen, "upstreams": list }))
}

/// One server as every shard sees it, and the node-wide summary.
fn server_json(
    views: &[ShardView],
    u: usize,
    name: &str,
    s: usize,
    address: &str,
    weight: u32,
) -> Value {
    let mut per_shard = Vec::new();
    let (mut up, mut ejected, mut in_flight, mut idle, mut ip) = (true, 0, 0u64, 0, None);
    for v in views {
        let Some(sv) = v
            .upstreams
            .get(u)
            .filter(|uv| uv.name == name)
            .and_then(|uv| uv.servers.get(s))
            .filter(|sv| sv.address == address)
        else {
            continue;
        };
        up &= sv.up;
        ejected += usize::from(sv.ejected_ms > 0);
        in_flight += u64::from(sv.in_flight);
        idle += sv.idle;
        ip = ip.or(sv.addr);
        per_shard.push(json!({
            "shard": v.id,
            "up": sv.up,
            "ejected_ms": sv.ejected_ms,
            "in_flight": sv.in_flight,
            "idle": sv.idle,
        }));
    }
    let health = if !up {
        "down"
    } else if ejected > 0 {
        "ejected"
    } else {
        "up"
    };
    json!({
        "address": address,
        "ip": ip.map(|a| a.to_string()),
        "weight": weight,
        "health": health,
        "ejected_shards": ejected,
        "in_flight": in_flight,
        "idle_connections": idle,
        "shards": per_shard,
    })
}

pub(super) async fn purge(admin: &Admin, body: &[u8]) -> Response {
    let filter = match parse_filter(body) {
        Ok(f) => f,
        Err(e) => return Response::error(400, &e),
    };
    let answers = gather(admin, |tx| Control::CachePurge(filter.clone(), tx)).await;
    let mut purged = 0;
    let mut cache = false;
    for a in answers {
        if let PurgeResult::Purged(n) = a {
            cache = true;
            purged += n;
        }
    }
    if !cache {
        return Response::error(501, "no cache configured");
    }
    Response::json(200, &json!({ "purged": purged }))
}

/// An empty body purges everything; otherwise `{"route": …, "host": …, "path_prefix": …}`.
fn parse_filter(body: &[u8]) -> Result<PurgeFilter, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PurgeFilter::default());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(map) = v else {
        return Err("body must be a JSON object".into());
    };
    let mut f = PurgeFilter::default();
    for (k, v) in map {
        let text = v.as_str().map(str::to_string);
        match (k.as_str(), text) {
            ("route", Some(t)) => f.route = Some(t),
            ("host", Some(t)) => f.host = Some(t),
            ("path_prefix", Some(t)) => f.path_prefix = Some(t),
            (k, _) => return Err(format!("unknown or non-string filter key \"{k}\"")),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut v = json!({
            "admin": { "listen": "127.0.0.1:9901", "token": "t0k" },
            "auth": [
                { "name": "jwt", "secret": "hmac-secret", "public_key_file": "k.pem" },
                { "name": "keys", "keys": { "k-123": "consumer-a", "k-456": "consumer-b" } }
            ],
            "rate_limit": [{ "redis": "redis://app:pa55@cache:6379/0" }],
            "route": [{ "request_headers": { "set": { "Authorization": "Bearer up", "x-a": "1" } } }]
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in ["t0k", "hmac-secret", "k-123", "k-456", "pa55", "Bearer up"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        for kept in [
            "127.0.0.1:9901",
            "k.pem",
            "consumer-a",
            "redis://app:",
            "cache:6379",
            "x-a",
        ] {
            assert!(text.contains(kept), "{kept} lost: {text}");
        }
    }

    #[test]
    fn purge_filters() {
        assert_eq!(parse_filter(b"").unwrap(), PurgeFilter::default());
        let f = parse_filter(br#"{"route": "r", "path_prefix": "/a"}"#).unwrap();
        assert_eq!(f.route.as_deref(), Some("r"));
        assert_eq!(f.path_prefix.as_deref(), Some("/a"));
        assert!(parse_filter(b"[1]").is_err());
        assert!(parse_filter(br#"{"nope": "x"}"#).is_err());
        assert!(parse_filter(b"{").is_err());
    }
}
