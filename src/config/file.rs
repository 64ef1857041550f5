//! `FileConfig`: the TOML file exactly as written, mirrored by serde with `deny_unknown_fields`.
//! No logic lives here; `validate.rs` turns it into the built `Config`.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

use super::defaults as d;
pub use super::gateway_file::RouteFile;
pub use super::upstream_file::{
    BalanceFile, HealthFile, OutlierFile, ServerEntryFile, UpstreamFile,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    /// `[admin]`: the admin listener (metrics, admin API); absent = none.
    pub admin: Option<AdminFile>,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// `[[listener]]`; a file without one listens on `defaults::LISTEN`.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerFile>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamFile>,
    /// `[discovery]`: the DNS resolver and file polling of discovered upstreams.
    #[serde(default)]
    pub discovery: DiscoveryFile,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteFile>,
    /// `[[auth]]`: JWT and API-key policies that routes name.
    #[serde(default, rename = "auth")]
    pub auths: Vec<super::gateway_file::AuthFile>,
    /// `[[rate_limit]]`: token-bucket policies that routes name.
    #[serde(default, rename = "rate_limit")]
    pub rate_limits: Vec<super::gateway_file::RateLimitFile>,
    /// `[[cors]]`: CORS policies that routes name.
    #[serde(default, rename = "cors")]
    pub cors: Vec<super::gateway_file::CorsFile>,
    /// `[cache]`: the per-shard response cache (routes opt in with `cache = { .. }`).
    #[serde(default)]
    pub cache: CacheFile,
    /// `[compression]`: levels, sizes and types (routes opt in with `compress = true`).
    #[serde(default)]
    pub compression: CompressionFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    /// Bytes of stored responses per shard.
    pub bytes_per_shard_max: usize,
    /// Largest response stored.
    pub entry_bytes_max: usize,
    /// Longest wait of a miss for another request fetching the same key.
    pub coalesce_timeout_ms: u64,
    /// Stale-on-error window of routes that set none.
    pub stale_s: u64,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            bytes_per_shard_max: d::CACHE_BYTES_PER_SHARD_MAX,
            entry_bytes_max: d::CACHE_ENTRY_BYTES_MAX,
            coalesce_timeout_ms: d::CACHE_COALESCE_TIMEOUT_MS,
            stale_s: d::CACHE_STALE_S,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionFile {
    pub gzip_level: u32,
    pub brotli_level: u32,
    /// Bodies with a smaller Content-Length are sent as they are.
    pub min_bytes: u64,
    /// Media types compressed ("text/*" allowed).
    pub types: Vec<String>,
    /// Codings offered, most preferred first: "br", "gzip".
    pub encodings: Vec<String>,
}

impl Default for CompressionFile {
    fn default() -> Self {
        CompressionFile {
            gzip_level: d::GZIP_LEVEL,
            brotli_level: d::BROTLI_LEVEL,
            min_bytes: d::COMPRESS_MIN_BYTES,
            types: d::COMPRESS_TYPES.iter().map(|s| s.to_string()).collect(),
            encodings: d::COMPRESS_ENCODINGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    /// "auto" (every core), a count, or an explicit list of core ids.
    pub workers: Workers,
    pub driver: DriverFile,
    pub drain_timeout_ms: u64,
    /// Upstream response fields never passed to clients (lower-case compare).
    pub hide_response_headers: Vec<String>,
    /// `Server` value coregate sends on its answers; empty: none.
    pub server_header: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            workers: Workers::Auto,
            driver: DriverFile::Auto,
            drain_timeout_ms: d::DRAIN_TIMEOUT_MS,
            hide_response_headers: d::HIDE_RESPONSE_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            server_header: String::new(),
        }
    }
}

/// How many shards to run and where to pin them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Count(usize),
    Cores(Vec<usize>),
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Workers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""auto", a number of workers, or a list of core ids"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Workers, E> {
                if s == "auto" {
                    Ok(Workers::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(s), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Workers, E> {
                usize::try_from(n)
                    .map(Workers::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Workers, E> {
                usize::try_from(n)
                    .map(Workers::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Workers, A::Error> {
                let mut cores = Vec::new();
                while let Some(core) = seq.next_element::<usize>()? {
                    cores.push(core);
                }
                Ok(Workers::Cores(cores))
            }
        }
        de.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverFile {
    Auto,
    IoUring,
    Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Required: "IP:port" of the admin listener.
    pub listen: String,
    /// Bearer token every admin request must carry; absent = none.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    /// error | warn | info | debug | trace
    pub level: String,
    pub format: LogFormat,
    /// Access log: "off" | "stdout" | a file path (relative to the config file).
    pub access: String,
    pub access_format: AccessFormatFile,
    /// Fields of each access-log line, in order (JSON), or appended to the combined line.
    pub access_fields: Vec<String>,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            level: "info".into(),
            format: LogFormat::Text,
            access: "off".into(),
            access_format: AccessFormatFile::Combined,
            access_fields: d::ACCESS_FIELDS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessFormatFile {
    Combined,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub header_bytes_max: usize,
    pub header_count_max: usize,
    pub uri_bytes_max: usize,
    pub body_bytes_max: u64,
    pub connections_per_shard_max: usize,
    /// Open connections per client IP, per shard; 0 = unlimited.
    pub connections_per_ip_max: usize,
    /// Open connections per shard above which an idle keep-alive connection gives up its task
    /// and buffers; 0 = always.
    pub idle_release_connections: usize,
    /// Slowest request body accepted, averaged over `client_body_rate_window_ms`; 0 = no floor.
    pub client_body_rate_min_bytes_per_s: u64,
    pub client_body_rate_window_ms: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            header_bytes_max: d::HEADER_BYTES_MAX,
            header_count_max: d::HEADER_COUNT_MAX,
            uri_bytes_max: d::URI_BYTES_MAX,
            body_bytes_max: d::BODY_BYTES_MAX,
            connections_per_shard_max: d::CONNECTIONS_PER_SHARD_MAX,
            connections_per_ip_max: 0,
            idle_release_connections: d::IDLE_RELEASE_CONNECTIONS,
            client_body_rate_min_bytes_per_s: 0,
            client_body_rate_window_ms: d::CLIENT_BODY_RATE_WINDOW_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsFile {
    pub client_header_ms: u64,
    pub client_body_ms: u64,
    pub client_idle_ms: u64,
    pub client_send_ms: u64,
    /// Lingering close after an answer while the client may still be sending: read and discard
    /// for at most this long in total; 0 = no lingering (close at once).
    pub client_linger_ms: u64,
    /// Lingering ends when no byte arrives for this long.
    pub client_linger_idle_ms: u64,
    pub tls_handshake_ms: u64,
    pub upstream_connect_ms: u64,
    pub upstream_response_ms: u64,
    pub upstream_idle_ms: u64,
    /// An upgraded (WebSocket) tunnel with no byte either way for this long is closed.
    pub tunnel_idle_ms: u64,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        TimeoutsFile {
            client_header_ms: d::CLIENT_HEADER_MS,
            client_body_ms: d::CLIENT_BODY_MS,
            client_idle_ms: d::CLIENT_IDLE_MS,
            client_send_ms: d::CLIENT_SEND_MS,
            client_linger_ms: d::CLIENT_LINGER_MS,
            client_linger_idle_ms: d::CLIENT_LINGER_IDLE_MS,
            tls_handshake_ms: d::TLS_HANDSHAKE_MS,
            upstream_connect_ms: d::UPSTREAM_CONNECT_MS,
            upstream_response_ms: d::UPSTREAM_RESPONSE_MS,
            upstream_idle_ms: d::UPSTREAM_IDLE_MS,
            tunnel_idle_ms: d::TUNNEL_IDLE_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryFile {
    /// DNS server asked for `dns` and `dns_srv` upstreams ("IP:port"); absent: the first
    /// `nameserver` of /etc/resolv.conf.
    pub resolver: Option<String>,
    /// One DNS query, per attempt.
    pub dns_timeout_ms: u64,
    /// How often `servers_file` files are checked for changes.
    pub file_poll_ms: u64,
}

impl Default for DiscoveryFile {
    fn default() -> Self {
        DiscoveryFile {
            resolver: None,
            dns_timeout_ms: d::DNS_TIMEOUT_MS,
            file_poll_ms: d::FILE_POLL_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<String>,
    /// Required: "IP:port".
    pub listen: String,
    /// HTTPS on this listener.
    pub tls: Option<TlsFile>,
    /// Client IPs (CIDR) let in; empty: all. Others are closed at accept.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client IPs (CIDR) closed at accept; wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain (leaf first) used when no SNI entry matches.
    pub cert: String,
    /// PEM private key of `cert`.
    pub key: String,
    /// Certificates chosen by the client's SNI.
    #[serde(default)]
    pub sni: Vec<SniFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniFile {
    pub server_name: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondFile {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "content_type")]
    pub content_type: String,
}

fn content_type() -> String {
    "text/plain".into()
}
