//! `[[rate_limit]]` and `[[cors]]` → `RateLimitPolicy` and `CorsPolicy`. For
//! `scope = "global"` the Redis URL is parsed (and its host resolved) here, at load.

use std::time::Duration;

use super::defaults as d;
use super::gateway_file::{CorsFile, RateLimitFile};
use super::ConfigError;
use crate::gateway::cors::{self, CorsPolicy};
use crate::gateway::methods::MethodSet;
use crate::gateway::rate_limit::{Fallback, GlobalSettings, LimitKey, RateLimitPolicy, Scope};
use crate::gateway::transform::valid_field_name;

pub(super) fn rate_limit(
    r: &RateLimitFile,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<RateLimitPolicy> {
    let scope = match r.scope.as_deref().unwrap_or("node") {
        "node" => Scope::Node,
        "shard" => Scope::Shard,
        "global" => Scope::Global,
        other => {
            errs.push(ConfigError::new(
                key("scope"),
                format!("\"{other}\" is not \"node\", \"shard\" or \"global\""),
            ));
            return None;
        }
    };
    let limit_key = match r.key.as_deref().unwrap_or("client_ip") {
        "client_ip" => LimitKey::ClientIp,
        "consumer" => LimitKey::Consumer,
        "route" => LimitKey::Route,
        k => match k.strip_prefix("header:") {
            Some(h) if valid_field_name(h) => LimitKey::Header(h.to_ascii_lowercase()),
            _ => {
                errs.push(ConfigError::new(
                    key("key"),
                    format!("\"{k}\" is not client_ip, consumer, route or header:NAME"),
                ));
                return None;
            }
        },
    };
    let period_ms = r.period_ms.unwrap_or(d::RATE_PERIOD_MS);
    super::validate::check_ms(&key("period_ms"), period_ms, 1, d::TIMEOUT_MS_MAX, errs);
    let burst = r.burst.unwrap_or(r.rate);
    let keys_max = r.keys_max.unwrap_or(d::RATE_KEYS_MAX);
    let mut range = |k: &str, v: u64, min: u64, max: u64| {
        if v < min || v > max {
            errs.push(ConfigError::new(
                key(k),
                format!("{v} is outside {min}..={max}"),
            ));
        }
    };
    range("rate", r.rate, 1, u64::from(u32::MAX));
    range("burst", burst, 1, u64::from(u32::MAX));
    range("keys_max", keys_max as u64, 2, d::RATE_KEYS_LIMIT as u64);
    let global = global(r, scope, burst, key, errs);
    Some(RateLimitPolicy {
        name: r.name.clone(),
        key: limit_key,
        rate: r.rate,
        period: Duration::from_millis(period_ms),
        burst,
        scope,
        keys_max,
        global,
    })
}

/// The Redis keys of a global policy; each is an error on another scope.
fn global(
    r: &RateLimitFile,
    scope: Scope,
    burst: u64,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<GlobalSettings> {
    if scope != Scope::Global {
        let given = [
            ("redis", r.redis.is_some()),
            ("redis_timeout_ms", r.redis_timeout_ms.is_some()),
            ("redis_fallback", r.redis_fallback.is_some()),
            ("lease_tokens", r.lease_tokens.is_some()),
        ];
        for (k, _) in given.iter().filter(|(_, set)| *set) {
            errs.push(ConfigError::new(key(k), "is only for scope = \"global\""));
        }
        return None;
    }
    let Some(url) = &r.redis else {
        errs.push(ConfigError::new(
            key("redis"),
            "scope = \"global\" needs a Redis URL (\"redis://host:port\")",
        ));
        return None;
    };
    let target = match crate::redis::parse_url(url) {
        Ok(t) => Some(t),
        Err(problem) => {
            errs.push(ConfigError::new(key("redis"), problem));
            None
        }
    };
    let timeout_ms = r.redis_timeout_ms.unwrap_or(d::REDIS_TIMEOUT_MS);
    super::validate::check_ms(&key("redis_timeout_ms"), timeout_ms, 1, 60_000, errs);
    let fallback = match r.redis_fallback.as_deref().unwrap_or("local") {
        "local" => Fallback::Local,
        "open" => Fallback::Open,
        "closed" => Fallback::Closed,
        other => {
            errs.push(ConfigError::new(
                key("redis_fallback"),
                format!("\"{other}\" is not \"local\", \"open\" or \"closed\""),
            ));
            Fallback::Local
        }
    };
    let lease = r.lease_tokens.unwrap_or_else(|| d::lease_tokens(burst));
    if lease < 1 || lease > burst.max(1) || lease > d::LEASE_TOKENS_LIMIT {
        errs.push(ConfigError::new(
            key("lease_tokens"),
            format!(
                "{lease} is outside 1..={} (at most the burst)",
                burst.clamp(1, d::LEASE_TOKENS_LIMIT)
            ),
        ));
    }
    Some(GlobalSettings {
        target: target?,
        timeout: Duration::from_millis(timeout_ms),
        fallback,
        lease_tokens: lease.clamp(1, d::LEASE_TOKENS_LIMIT) as u32,
    })
}

pub(super) fn cors_policy(
    c: &CorsFile,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<CorsPolicy> {
    if c.allow_origins.is_empty() {
        errs.push(ConfigError::new(
            key("allow_origins"),
            "list at least one origin (or \"*\")",
        ));
        return None;
    }
    let mut origins = Vec::new();
    let mut any_origin = false;
    for o in &c.allow_origins {
        if o == "*" {
            any_origin = true;
        } else if let Some(m) = cors::parse_origin(o) {
            origins.push(m);
        } else {
            errs.push(ConfigError::new(
                key("allow_origins"),
                format!("\"{o}\" is not an origin (\"https://app.example.com\", \"https://*.example.com\" or \"*\")"),
            ));
        }
    }
    let methods = match MethodSet::parse(&c.allow_methods) {
        Ok(m) => m,
        Err(bad) => {
            errs.push(ConfigError::new(
                key("allow_methods"),
                format!("\"{bad}\" is not a method"),
            ));
            return None;
        }
    };
    let names = |k: &str, list: &[String], errs: &mut Vec<ConfigError>| {
        if let Some(bad) = list.iter().find(|h| !valid_field_name(h)) {
            errs.push(ConfigError::new(
                key(k),
                format!("\"{bad}\" is not a field name"),
            ));
        }
        list.join(", ")
    };
    Some(CorsPolicy {
        name: c.name.clone(),
        any_origin,
        origins,
        methods,
        headers: names("allow_headers", &c.allow_headers, errs),
        expose: names("expose_headers", &c.expose_headers, errs),
        credentials: c.allow_credentials,
        max_age_s: c.max_age_s,
    })
}
