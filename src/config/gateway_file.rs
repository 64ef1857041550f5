//! The API-gateway part of the TOML file, as written: `[[route]]` match, rewrite and policy
//! keys, `[[auth]]`, `[[rate_limit]]` and `[[cors]]`. serde only, `deny_unknown_fields`; the
//! checks and the build live in `validate_gateway.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::file::RespondFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<String>,
    /// "api.example.com" or "*.example.com"; absent matches every host.
    pub host: Option<String>,
    /// At most one of `path_exact`, `path` (pattern) and `path_prefix`; none means prefix "/".
    pub path_prefix: Option<String>,
    /// Pattern with named segments: "/users/{id}/orders", catch-all "/files/{*rest}".
    pub path: Option<String>,
    pub path_exact: Option<String>,
    /// Methods this route accepts (GET implies HEAD); absent accepts every method.
    pub methods: Option<Vec<String>>,
    /// Header conditions: name → exact value, or "*" for "present with any value".
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Exactly one of `upstream`, `respond` and `aggregate`.
    pub upstream: Option<String>,
    pub respond: Option<RespondFile>,
    pub aggregate: Option<Vec<AggregatePartFile>>,
    /// For `aggregate`: "partial" (failed parts become error objects) or "fail" (502/504).
    pub aggregate_on_error: Option<String>,
    /// Rewrites of the upstream path (at most one): remove this prefix …
    pub strip_prefix: Option<String>,
    /// … replace the route's `path_prefix` with this …
    pub replace_prefix: Option<String>,
    /// … or build the path from a template with the `path` pattern's parameters.
    pub rewrite: Option<String>,
    pub auth: Option<String>,
    pub rate_limit: Option<String>,
    pub cors: Option<String>,
    pub request_headers: Option<HeaderOpsFile>,
    pub response_headers: Option<HeaderOpsFile>,
    /// Retry non-idempotent methods (POST, PATCH…) on another server after a reset before
    /// any response byte, as idempotent ones are.
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// Client IPs (CIDR) allowed on this route; empty: all. Others get 403.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client IPs (CIDR) refused with 403; wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Request body limit on this route, replacing `limits.body_bytes_max`.
    pub body_bytes_max: Option<u64>,
    /// Cache this route's GET/HEAD answers (`upstream` routes).
    pub cache: Option<RouteCacheFile>,
    /// Compress this route's answers for clients that accept it (`upstream` routes).
    #[serde(default)]
    pub compress: bool,
}

/// `cache = { ttl_s = 60, stale_s = 30, set_cookie = "bypass" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheFile {
    /// Freshness of responses without explicit freshness; 0: those are not stored.
    #[serde(default)]
    pub ttl_s: u64,
    /// Serve-stale-on-error window; absent: `[cache] stale_s`.
    pub stale_s: Option<u64>,
    /// Responses with Set-Cookie: "bypass" (not stored) or "strip" (stored without it).
    pub set_cookie: Option<String>,
}

/// Header transforms: values may use `${client_ip}`, `${consumer}`, `${route}`,
/// `${param.NAME}` and `${claim.NAME}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsFile {
    #[serde(default)]
    pub remove: Vec<String>,
    /// Replace every field of this name with one of ours.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Add a field, keeping any the message already has.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatePartFile {
    /// Key of this part in the JSON answer.
    pub key: String,
    pub upstream: String,
    /// Path and query sent upstream; may use the route's `{param}`s.
    pub path: String,
    /// Per-part deadline; defaults to `timeouts.upstream_response_ms`.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub name: String,
    /// "jwt" | "api_key"
    pub kind: String,
    // --- jwt ---
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// HMAC secret (HS*).
    pub secret: Option<String>,
    /// PEM public key (RS*, ES*, EdDSA), inline.
    pub public_key: Option<String>,
    /// PEM public key file.
    pub public_key_file: Option<String>,
    /// JWK set file; the token's `kid` picks the key.
    pub jwks_file: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_s: Option<u64>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim rules: the claim must equal the value (or, for an array claim, contain it) → 403.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Claim → header forwarded upstream (a client-sent field of that name is removed).
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Claim naming the consumer (for rate limits and logs); default "sub".
    pub consumer_claim: Option<String>,
    // --- api_key ---
    pub header: Option<String>,
    pub query: Option<String>,
    /// Key → consumer name.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: String,
    /// "client_ip" | "consumer" | "header:NAME" | "route"
    pub key: Option<String>,
    /// Tokens per period.
    pub rate: u64,
    pub period_ms: Option<u64>,
    /// Bucket size; defaults to `rate`.
    pub burst: Option<u64>,
    /// "node" | "shard" | "global" (Redis)
    pub scope: Option<String>,
    /// For "global": "redis://[[user]:password@]host[:port][/db]".
    pub redis: Option<String>,
    /// For "global": longest wait for Redis when a shard's lease is empty.
    pub redis_timeout_ms: Option<u64>,
    /// For "global": "local" (node limit) | "open" | "closed" while Redis is unreachable.
    pub redis_fallback: Option<String>,
    /// For "global": tokens leased from Redis per round trip.
    pub lease_tokens: Option<u64>,
    /// Keys tracked per shard before idle ones are evicted.
    pub keys_max: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    pub name: String,
    /// Exact origins, "*" (any), or patterns such as "https://*.example.com".
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub max_age_s: Option<u64>,
}
