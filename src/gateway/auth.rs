//! Authentication per route: JWT bearer tokens (jsonwebtoken, aws-lc-rs backend) with keys from
//! the config, PEM files or a JWK set (picked by `kid`), and API keys from a header or query
//! parameter mapped to a consumer. Keys and `Validation`s are built at load; a check here only
//! verifies. Failures map to 401 (no or bad credentials) or 403 (claim rules refused).

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::http::{HeaderSpan, Span};

#[derive(Debug)]
pub enum Auth {
    Jwt(Box<JwtAuth>),
    ApiKey(ApiKeyAuth),
}

pub struct JwtAuth {
    pub name: String,
    pub keys: Vec<JwtKey>,
    /// Claims that must be present (401 otherwise).
    pub required_claims: Vec<String>,
    /// (claim, value): equal, a member of an array claim, or a word of a space-separated one.
    pub rules: Vec<(String, String)>,
    pub consumer_claim: String,
    /// (claim, header) forwarded upstream.
    pub claims_to_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// One verification key with the validation rules for the algorithms it may verify.
pub struct JwtKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub validation: Validation,
}

#[derive(Debug)]
pub struct ApiKeyAuth {
    pub name: String,
    pub source: KeySource,
    /// Key → consumer.
    pub keys: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Lower-case field name.
    Header(String),
    Query(String),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No credentials: 401.
    Missing,
    /// Bad credentials (signature, algorithm, expiry, issuer, audience, unknown key): 401.
    Invalid,
    /// Valid credentials that the route's claim rules refuse: 403.
    Forbidden,
}

/// Who the request is from, as the later phases need it.
#[derive(Debug, Default)]
pub struct Identity {
    pub consumer: Option<String>,
    pub claims: Map<String, Value>,
}

/// The request pieces authentication reads.
pub struct Credentials<'a> {
    pub buf: &'a [u8],
    pub headers: &'a [HeaderSpan],
    /// Path and query.
    pub target: Span,
}

// === impl Auth ===

impl Auth {
    pub fn name(&self) -> &str {
        match self {
            Auth::Jwt(j) => &j.name,
            Auth::ApiKey(k) => &k.name,
        }
    }

    pub fn check(&self, c: &Credentials<'_>) -> Result<Identity, Denial> {
        match self {
            Auth::Jwt(j) => j.check(c),
            Auth::ApiKey(k) => k.check(c),
        }
    }

    /// The `WWW-Authenticate` value for a denial.
    pub fn challenge(&self, d: Denial) -> &'static str {
        match (self, d) {
            (Auth::Jwt(_), Denial::Missing) => "Bearer realm=\"coregate\"",
            (Auth::Jwt(_), Denial::Invalid) => "Bearer realm=\"coregate\", error=\"invalid_token\"",
            (Auth::Jwt(_), Denial::Forbidden) => {
                "Bearer realm=\"coregate\", error=\"insufficient_scope\""
            }
            (Auth::ApiKey(_), _) => "ApiKey realm=\"coregate\"",
        }
    }
}

// === impl JwtAuth ===

impl JwtAuth {
    fn check(&self, c: &Credentials<'_>) -> Result<Identity, Denial> {
        let token = bearer(c).ok_or(Denial::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Denial::Invalid)?;
        let mut claims = None;
        for k in self.candidates(header.kid.as_deref(), header.alg) {
            if let Ok(data) =
                jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &k.validation)
            {
                claims = Some(data.claims);
                break;
            }
        }
        let claims = claims.ok_or(Denial::Invalid)?;
        if !self.required_claims.iter().all(|n| claims.contains_key(n)) {
            return Err(Denial::Invalid);
        }
        if !self
            .rules
            .iter()
            .all(|(n, v)| claim_allows(claims.get(n), v))
        {
            return Err(Denial::Forbidden);
        }
        let consumer = claims.get(&self.consumer_claim).and_then(claim_text);
        Ok(Identity { consumer, claims })
    }

    /// Keys that may verify a token: the one named by `kid` when the token names one (and a
    /// key carries it), else every key whose algorithms include the token's.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a JwtKey> {
        let by_kid = kid.filter(|k| self.keys.iter().any(|x| x.kid.as_deref() == Some(*k)));
        self.keys.iter().filter(move |k| match by_kid {
            Some(want) => k.kid.as_deref() == Some(want),
            None => kid.is_none() && k.validation.algorithms.contains(&alg),
        })
    }
}

/// The token of `Authorization: Bearer TOKEN` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer<'a>(c: &Credentials<'a>) -> Option<&'a [u8]> {
    let h = c
        .headers
        .iter()
        .find(|h| h.name.get(c.buf).eq_ignore_ascii_case(b"authorization"))?;
    let v = h.value.get(c.buf);
    let (scheme, token) = v.split_at(v.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn claim_allows(v: Option<&Value>, want: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == want || s.split(' ').any(|w| w == want),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(want)),
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

/// A claim as header text: strings as they are, numbers and booleans printed.
pub fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// === impl ApiKeyAuth ===

impl ApiKeyAuth {
    fn check(&self, c: &Credentials<'_>) -> Result<Identity, Denial> {
        let key = match &self.source {
            KeySource::Header(name) => c
                .headers
                .iter()
                .find(|h| h.name.get(c.buf).eq_ignore_ascii_case(name.as_bytes()))
                .map(|h| h.value.get(c.buf)),
            KeySource::Query(name) => query_param(c.target.get(c.buf), name.as_bytes()),
        };
        let key = key.filter(|k| !k.is_empty()).ok_or(Denial::Missing)?;
        let key = std::str::from_utf8(key).map_err(|_| Denial::Invalid)?;
        let consumer = self.keys.get(key).ok_or(Denial::Invalid)?;
        Ok(Identity {
            consumer: Some(consumer.clone()),
            claims: Map::new(),
        })
    }
}

/// The raw value of `name` in the target's query string.
fn query_param<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let q = target.iter().position(|&b| b == b'?')?;
    target[q + 1..].split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_claim_rules() {
        assert_eq!(
            query_param(b"/a?x=1&api_key=k1", b"api_key"),
            Some(&b"k1"[..])
        );
        assert_eq!(query_param(b"/a?api_keyx=1", b"api_key"), None);
        assert_eq!(query_param(b"/a", b"api_key"), None);
        let s = Value::String("read write".into());
        assert!(claim_allows(Some(&s), "write"));
        assert!(!claim_allows(Some(&s), "admin"));
        let a = serde_json::json!(["admin", "ops"]);
        assert!(claim_allows(Some(&a), "ops"));
        assert!(!claim_allows(None, "ops"));
    }
}
