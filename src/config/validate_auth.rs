//! `[[auth]]`, `[[rate_limit]]` and `[[cors]]` → the built `Gateway`: keys read and parsed (PEM
//! files, JWK sets) and `Validation`s made here, at load, never on a shard.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::defaults as d;
use super::file::FileConfig;
use super::gateway_file::{AuthFile, CorsFile, RateLimitFile};
use super::ConfigError;
use crate::gateway::auth::{ApiKeyAuth, Auth, JwtAuth, JwtKey, KeySource};
use crate::gateway::cors::{self, CorsPolicy};
use crate::gateway::methods::MethodSet;
use crate::gateway::rate_limit::{LimitKey, RateLimitPolicy, Scope};
use crate::gateway::transform::valid_field_name;
use crate::gateway::Gateway;

pub(super) fn gateway(file: &FileConfig, dir: &Path, errs: &mut Vec<ConfigError>) -> Gateway {
    let mut g = Gateway::default();
    for (i, a) in file.auths.iter().enumerate() {
        let key = |k: &str| format!("auth[{i}].{k}");
        unique(&key("name"), &a.name, g.auths.iter().map(Auth::name), errs);
        let built = match a.kind.as_str() {
            "jwt" => jwt(a, dir, &key, errs).map(|j| Auth::Jwt(Box::new(j))),
            "api_key" => api_key(a, &key, errs).map(Auth::ApiKey),
            other => {
                errs.push(ConfigError::new(
                    key("kind"),
                    format!("\"{other}\" is not \"jwt\" or \"api_key\""),
                ));
                None
            }
        };
        if let Some(b) = built {
            g.auths.push(b);
        }
    }
    for (i, r) in file.rate_limits.iter().enumerate() {
        let key = |k: &str| format!("rate_limit[{i}].{k}");
        unique(
            &key("name"),
            &r.name,
            g.rate_limits.iter().map(|p| p.name.as_str()),
            errs,
        );
        if let Some(p) = rate_limit(r, &key, errs) {
            g.rate_limits.push(p);
        }
    }
    for (i, c) in file.cors.iter().enumerate() {
        let key = |k: &str| format!("cors[{i}].{k}");
        unique(
            &key("name"),
            &c.name,
            g.cors.iter().map(|p| p.name.as_str()),
            errs,
        );
        if let Some(p) = cors_policy(c, &key, errs) {
            g.cors.push(p);
        }
    }
    g
}

fn unique<'a>(
    key: &str,
    name: &str,
    seen: impl Iterator<Item = &'a str>,
    errs: &mut Vec<ConfigError>,
) {
    if name.is_empty() {
        errs.push(ConfigError::new(key, "is empty"));
    } else if seen.into_iter().any(|n| n == name) {
        errs.push(ConfigError::new(
            key,
            format!("\"{name}\" is defined twice"),
        ));
    }
}

fn jwt(
    a: &AuthFile,
    dir: &Path,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<JwtAuth> {
    for (set, k) in [
        (a.header.is_some(), "header"),
        (a.query.is_some(), "query"),
        (!a.keys.is_empty(), "keys"),
    ] {
        if set {
            errs.push(ConfigError::new(key(k), "is for kind = \"api_key\""));
        }
    }
    if a.algorithms.is_empty() {
        errs.push(ConfigError::new(
            key("algorithms"),
            "list at least one algorithm",
        ));
        return None;
    }
    let mut algs = Vec::new();
    for name in &a.algorithms {
        match Algorithm::from_str(name) {
            Ok(alg) => algs.push(alg),
            Err(_) => {
                errs.push(ConfigError::new(
                    key("algorithms"),
                    format!("\"{name}\" is not one of HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA"),
                ));
                return None;
            }
        }
    }
    let sources = [&a.secret, &a.public_key, &a.public_key_file, &a.jwks_file];
    if sources.iter().filter(|s| s.is_some()).count() != 1 {
        errs.push(ConfigError::new(
            key("").trim_end_matches('.').to_string(),
            "needs exactly one of `secret`, `public_key`, `public_key_file` and `jwks_file`",
        ));
        return None;
    }
    let validation = base_validation(a);
    let keys = jwt_keys(a, dir, &algs, &validation, key, errs)?;
    let mut claims_to_headers = Vec::new();
    for (claim, header) in &a.claims_to_headers {
        if !valid_field_name(header) {
            errs.push(ConfigError::new(
                key("claims_to_headers"),
                format!("\"{header}\" is not a field name"),
            ));
        }
        claims_to_headers.push((claim.clone(), header.clone()));
    }
    Some(JwtAuth {
        name: a.name.clone(),
        keys,
        required_claims: a.required_claims.clone(),
        rules: a
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        consumer_claim: a
            .consumer_claim
            .clone()
            .unwrap_or_else(|| d::JWT_CONSUMER_CLAIM.into()),
        claims_to_headers,
    })
}

/// `exp` required and checked, `nbf` checked, issuer and audience required when configured.
fn base_validation(a: &AuthFile) -> Validation {
    let mut v = Validation {
        leeway: a.leeway_s.unwrap_or(d::JWT_LEEWAY_S),
        validate_nbf: true,
        ..Validation::default()
    };
    let mut required = vec!["exp"];
    if let Some(iss) = &a.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    match &a.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

fn jwt_keys(
    a: &AuthFile,
    dir: &Path,
    algs: &[Algorithm],
    base: &Validation,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<Vec<JwtKey>> {
    let with_algs = |k: DecodingKey, kid: Option<String>, only: Option<Algorithm>| {
        let family = k.family();
        let mut v = base.clone();
        v.algorithms = algs
            .iter()
            .copied()
            .filter(|a| a.family() == family && only.is_none_or(|o| o == *a))
            .collect();
        (!v.algorithms.is_empty()).then_some(JwtKey {
            kid,
            key: k,
            validation: v,
        })
    };
    let single = |k: Option<DecodingKey>, name: &str, errs: &mut Vec<ConfigError>| {
        let Some(k) = k else {
            errs.push(ConfigError::new(
                key(name),
                "is not a PEM RSA, EC or Ed25519 public key",
            ));
            return None;
        };
        let built = with_algs(k, None, None);
        if built.is_none() {
            errs.push(ConfigError::new(
                key(name),
                "this key verifies none of the listed `algorithms`",
            ));
        }
        built.map(|k| vec![k])
    };
    if let Some(secret) = &a.secret {
        if secret.is_empty() {
            errs.push(ConfigError::new(key("secret"), "is empty"));
            return None;
        }
        return single(
            Some(DecodingKey::from_secret(secret.as_bytes())),
            "secret",
            errs,
        );
    }
    if let Some(pem) = &a.public_key {
        return single(pem_key(pem.as_bytes()), "public_key", errs);
    }
    if let Some(file) = &a.public_key_file {
        let bytes = read(dir, file, &key("public_key_file"), errs)?;
        return single(pem_key(&bytes), "public_key_file", errs);
    }
    let file = a.jwks_file.as_ref()?;
    let bytes = read(dir, file, &key("jwks_file"), errs)?;
    let set: JwkSet = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            errs.push(ConfigError::new(
                key("jwks_file"),
                format!("not a JWK set: {e}"),
            ));
            return None;
        }
    };
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let only = jwk
            .common
            .key_algorithm
            .and_then(|ka| Algorithm::from_str(&ka.to_string()).ok());
        if let Ok(k) = DecodingKey::from_jwk(jwk) {
            keys.extend(with_algs(k, jwk.common.key_id.clone(), only));
        }
    }
    if keys.is_empty() {
        errs.push(ConfigError::new(
            key("jwks_file"),
            "holds no key usable with the listed `algorithms`",
        ));
        return None;
    }
    Some(keys)
}

fn pem_key(pem: &[u8]) -> Option<DecodingKey> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .ok()
}

/// Read a file named in the config, relative to the config file's directory.
fn read(dir: &Path, file: &str, key: &str, errs: &mut Vec<ConfigError>) -> Option<Vec<u8>> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            errs.push(ConfigError::new(
                key,
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}

fn api_key(
    a: &AuthFile,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<ApiKeyAuth> {
    for (set, k) in [
        (!a.algorithms.is_empty(), "algorithms"),
        (a.secret.is_some(), "secret"),
        (a.public_key.is_some(), "public_key"),
        (a.public_key_file.is_some(), "public_key_file"),
        (a.jwks_file.is_some(), "jwks_file"),
        (a.issuer.is_some(), "issuer"),
        (a.audience.is_some(), "audience"),
        (!a.claims_to_headers.is_empty(), "claims_to_headers"),
        (!a.claims.is_empty(), "claims"),
    ] {
        if set {
            errs.push(ConfigError::new(key(k), "is for kind = \"jwt\""));
        }
    }
    let source = match (&a.header, &a.query) {
        (Some(h), None) if valid_field_name(h) => KeySource::Header(h.to_ascii_lowercase()),
        (Some(h), None) => {
            errs.push(ConfigError::new(
                key("header"),
                format!("\"{h}\" is not a field name"),
            ));
            return None;
        }
        (None, Some(q)) if !q.is_empty() && !q.contains(['&', '=', '?', ' ']) => {
            KeySource::Query(q.clone())
        }
        (None, Some(q)) => {
            errs.push(ConfigError::new(
                key("query"),
                format!("\"{q}\" is not a parameter name"),
            ));
            return None;
        }
        _ => {
            errs.push(ConfigError::new(
                key("header"),
                "an api_key auth needs exactly one of `header` and `query`",
            ));
            return None;
        }
    };
    if a.keys.is_empty() {
        errs.push(ConfigError::new(key("keys"), "list at least one key"));
    }
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| (b' '..0x7f).contains(&b));
    for (k, consumer) in &a.keys {
        if !printable(k) || !printable(consumer) {
            errs.push(ConfigError::new(
                key("keys"),
                "keys and consumer names must be printable ASCII, not empty",
            ));
            break;
        }
    }
    Some(ApiKeyAuth {
        name: a.name.clone(),
        source,
        keys: a
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
    })
}

fn rate_limit(
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

fn cors_policy(
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
