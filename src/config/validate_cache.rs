//! `[cache]`, `[compression]` and the routes' `cache = { .. }` / `compress` keys → the built
//! `CacheSettings`, `CompressionSettings` and `CachePolicy`. Every problem names its key.

use std::time::Duration;

use super::defaults as d;
use super::file::{CacheFile, CompressionFile, RouteFile};
use super::ConfigError;
use crate::cache::{CachePolicy, CacheSettings};
use crate::compress::{Coding, CompressionSettings};
use crate::gateway::RoutePolicy;
use crate::router::Action;

pub(super) fn cache(f: &CacheFile, errs: &mut Vec<ConfigError>) -> CacheSettings {
    let (min, max) = (d::CACHE_BYTES_MIN, d::CACHE_BYTES_LIMIT);
    if !(min..=max).contains(&f.bytes_per_shard_max) {
        errs.push(ConfigError::new(
            "cache.bytes_per_shard_max",
            format!("{} is outside {min}..={max}", f.bytes_per_shard_max),
        ));
    }
    if f.entry_bytes_max == 0 || f.entry_bytes_max > f.bytes_per_shard_max {
        errs.push(ConfigError::new(
            "cache.entry_bytes_max",
            format!(
                "{} is outside 1..=bytes_per_shard_max ({})",
                f.entry_bytes_max, f.bytes_per_shard_max
            ),
        ));
    }
    super::validate::check_ms(
        "cache.coalesce_timeout_ms",
        f.coalesce_timeout_ms,
        1,
        d::TIMEOUT_MS_MAX,
        errs,
    );
    seconds("cache.stale_s", f.stale_s, errs);
    CacheSettings {
        bytes_per_shard_max: f.bytes_per_shard_max,
        entry_bytes_max: f.entry_bytes_max,
        coalesce_timeout: Duration::from_millis(f.coalesce_timeout_ms),
        stale: Duration::from_secs(f.stale_s),
    }
}

fn seconds(key: &str, v: u64, errs: &mut Vec<ConfigError>) {
    if v > d::CACHE_SECONDS_MAX {
        errs.push(ConfigError::new(
            key,
            format!("{v} s is more than {} s (a year)", d::CACHE_SECONDS_MAX),
        ));
    }
}

pub(super) fn compression(f: &CompressionFile, errs: &mut Vec<ConfigError>) -> CompressionSettings {
    if !(1..=9).contains(&f.gzip_level) {
        errs.push(ConfigError::new(
            "compression.gzip_level",
            format!("{} is outside 1..=9", f.gzip_level),
        ));
    }
    if f.brotli_level > 11 {
        errs.push(ConfigError::new(
            "compression.brotli_level",
            format!("{} is outside 0..=11", f.brotli_level),
        ));
    }
    if f.min_bytes > 1 << 30 {
        errs.push(ConfigError::new(
            "compression.min_bytes",
            format!("{} is more than 1073741824", f.min_bytes),
        ));
    }
    let mut types = Vec::new();
    for (i, t) in f.types.iter().enumerate() {
        match media_type(t) {
            Some(pair) => types.push(pair),
            None => errs.push(ConfigError::new(
                format!("compression.types[{i}]"),
                format!("\"{t}\" is not a media type (type/subtype or type/*)"),
            )),
        }
    }
    let mut encodings = Vec::new();
    for (i, e) in f.encodings.iter().enumerate() {
        match Coding::parse(e) {
            Some(c) if !encodings.contains(&c) => encodings.push(c),
            Some(_) => errs.push(ConfigError::new(
                format!("compression.encodings[{i}]"),
                format!("\"{e}\" is listed twice"),
            )),
            None => errs.push(ConfigError::new(
                format!("compression.encodings[{i}]"),
                format!("\"{e}\" is not \"br\" or \"gzip\""),
            )),
        }
    }
    if f.encodings.is_empty() {
        errs.push(ConfigError::new(
            "compression.encodings",
            "is empty: list \"br\", \"gzip\" or both",
        ));
    }
    CompressionSettings {
        gzip_level: f.gzip_level.clamp(1, 9),
        brotli_level: f.brotli_level.min(11),
        min_bytes: f.min_bytes,
        types,
        encodings,
    }
}

fn media_type(t: &str) -> Option<(String, String)> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let (ty, sub) = t.split_once('/')?;
    (token(ty) && (sub == "*" || token(sub)))
        .then(|| (ty.to_ascii_lowercase(), sub.to_ascii_lowercase()))
}

/// Route `i`'s `cache` and `compress` into its policy (only `upstream` routes may use them).
pub(super) fn route(
    r: &RouteFile,
    i: usize,
    action: &Action,
    settings: &CacheSettings,
    p: &mut RoutePolicy,
    errs: &mut Vec<ConfigError>,
) {
    let key = |k: &str| format!("route[{i}].{k}");
    let proxied = matches!(action, Action::Proxy(_));
    if r.compress && !proxied {
        errs.push(ConfigError::new(
            key("compress"),
            "is only for `upstream` routes",
        ));
    }
    p.compress = r.compress && proxied;
    let Some(c) = &r.cache else { return };
    if !proxied {
        errs.push(ConfigError::new(
            key("cache"),
            "is only for `upstream` routes",
        ));
        return;
    }
    seconds(&key("cache.ttl_s"), c.ttl_s, errs);
    let stale_s = c.stale_s.unwrap_or(settings.stale.as_secs());
    seconds(&key("cache.stale_s"), stale_s, errs);
    let strip_set_cookie = match c.set_cookie.as_deref().unwrap_or("bypass") {
        "bypass" => false,
        "strip" => true,
        other => {
            errs.push(ConfigError::new(
                key("cache.set_cookie"),
                format!("\"{other}\" is not \"bypass\" or \"strip\""),
            ));
            false
        }
    };
    p.cache = Some(CachePolicy {
        ttl: Duration::from_secs(c.ttl_s),
        stale: Duration::from_secs(stale_s),
        strip_set_cookie,
        store_remove: Vec::new(),
    });
}

/// After the route's response removals are final (hidden fields merged in): the fields a
/// stored head leaves out.
pub(super) fn finish(p: &mut RoutePolicy) {
    let Some(c) = &mut p.cache else { return };
    let mut remove = p.response_ops.remove.clone();
    remove.push(b"age".to_vec().into_boxed_slice());
    if c.strip_set_cookie {
        remove.push(b"set-cookie".to_vec().into_boxed_slice());
    }
    c.store_remove = remove;
}
