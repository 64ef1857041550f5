//! `[[auth]]` (and, through `validate_policy`, `[[rate_limit]]` and `[[cors]]`) → the built
//! `Gateway`: keys read and parsed (PEM files, JWK sets) and `Validation`s made here, at load,
//! never on a shard.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::defaults as d;
use super::file::FileConfig;
use super::gateway_file::AuthFile;
use super::validate_policy::{cors_policy, rate_limit};
use super::ConfigError;
use crate::gateway::auth::{ApiKeyAuth, Auth, JwtAuth, JwtKey, KeySource};
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

pub(super) fn unique<'a>(
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
    jwks_keys(dir, file, &with_algs, &key("jwks_file"), errs)
}

/// Every key of a JWK set usable with the listed algorithms (a key's own `alg` narrows them).
fn jwks_keys(
    dir: &Path,
    file: &str,
    with_algs: &dyn Fn(DecodingKey, Option<String>, Option<Algorithm>) -> Option<JwtKey>,
    key: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Vec<JwtKey>> {
    let bytes = read(dir, file, key, errs)?;
    let set: JwkSet = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            errs.push(ConfigError::new(key, format!("not a JWK set: {e}")));
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
            key,
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
    match super::read_bounded(&path, super::FILE_BYTES_MAX) {
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
