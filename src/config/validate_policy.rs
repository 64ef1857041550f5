//! `[[rate_limit]]` and `[[cors]]` → `RateLimitPolicy` and `CorsPolicy`. `scope = "global"`
//! (Redis) is refused here until it exists.

use std::time::Duration;

use super::defaults as d;
use super::gateway_file::{CorsFile, RateLimitFile};
use super::ConfigError;
use crate::gateway::cors::{self, CorsPolicy};
use crate::gateway::methods::MethodSet;
use crate::gateway::rate_limit::{LimitKey, RateLimitPolicy, Scope};
use crate::gateway::transform::valid_field_name;

pub(super) fn rate_limit(
    r: &RateLimitFile,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<RateLimitPolicy> {
    let scope = match r.scope.as_deref().unwrap_or("node") {
        "node" => Scope::Node,
        "shard" => Scope::Shard,
        "global" => {
            errs.push(ConfigError::new(
                key("scope"),
                "\"global\" (Redis) is not supported yet; use \"node\" or \"shard\"",
            ));
            return None;
        }
        other => {
            errs.push(ConfigError::new(
                key("scope"),
                format!("\"{other}\" is not \"node\", \"shard\" or \"global\""),
            ));
            return None;
        }
    };
    if r.redis.is_some() {
        errs.push(ConfigError::new(
            key("redis"),
            "is for scope = \"global\", which is not supported yet",
        ));
    }
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
    Some(RateLimitPolicy {
        name: r.name.clone(),
        key: limit_key,
        rate: r.rate,
        period: Duration::from_millis(period_ms),
        burst,
        scope,
        keys_max,
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
