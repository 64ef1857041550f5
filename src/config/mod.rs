//! Configuration: `config.toml -> FileConfig -> validate -> Config`.
//! `Config` is built once (addresses resolved, responses pre-rendered, router compiled), shared
//! read-only by every shard, and never validated again under traffic.

pub mod defaults;
mod discovery;
pub mod file;
pub mod gateway_file;
mod health;
pub mod upstream;
mod upstream_file;
mod validate;
mod validate_auth;
mod validate_cache;
mod validate_edge;
mod validate_policy;
mod validate_route;
mod validate_route_policy;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use discovery::{server_entry, DiscoverySettings, Source};
pub use file::{DriverFile as Driver, LogFormat, Workers};
pub use health::{HealthCheck, Outlier};
pub use upstream::{
    Balance, HashKey, PoolAddress, RetryBudget, Upstream, UpstreamId, UpstreamServer,
};

use crate::gateway::Gateway;
use crate::router::Router;

/// The validated, built configuration.
#[derive(Debug)]
pub struct Config {
    /// Where it was loaded from, for messages.
    pub source: PathBuf,
    pub server: ServerSettings,
    /// The admin listener, when `[admin]` is present.
    pub admin: Option<AdminSettings>,
    pub log: LogSettings,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub listeners: Vec<Listener>,
    /// Read-only and shared; a discovered cluster's later memberships are new `Upstream`s
    /// built on the control thread and sent to the shards.
    pub upstreams: Vec<std::sync::Arc<Upstream>>,
    /// Resolver and polling of discovered upstreams.
    pub discovery: DiscoverySettings,
    /// Number of distinct upstream server addresses; each shard keeps one idle pool per address.
    pub pool_count: usize,
    /// The distinct server addresses as written, indexed by `UpstreamServer::pool`.
    pub pools: Vec<PoolAddress>,
    pub router: Router,
    /// Auth, rate-limit and CORS policies that routes refer to by index.
    pub gateway: Gateway,
    /// The file as parsed, for `GET /config` (redacted there).
    pub document: toml::Table,
    /// `[cache]`: each shard's response cache (used by routes with `cache`).
    pub cache: crate::cache::CacheSettings,
    /// `[compression]` (used by routes with `compress = true`).
    pub compression: crate::compress::CompressionSettings,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub workers: Workers,
    pub driver: Driver,
    pub drain_timeout: Duration,
    /// Lower-case names of upstream response fields never passed on (`Server`, `X-Powered-By`).
    pub hide_response_headers: Vec<Box<[u8]>>,
    /// `Server` value coregate puts on the answers it writes from a route; `None`: none.
    pub server_header: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    /// Where access-log lines go (`None`: off).
    pub access: Option<crate::access_log::Target>,
    pub access_format: crate::access_log::Format,
    pub access_fields: Vec<crate::access_log::Field>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_bytes_max: usize,
    pub header_count_max: usize,
    pub uri_bytes_max: usize,
    pub body_bytes_max: u64,
    pub connections_per_shard_max: usize,
    /// Open connections per client IP on one shard; 0 = unlimited.
    pub connections_per_ip_max: usize,
    /// Open connections on a shard above which a keep-alive connection idle for a second gives
    /// up its task and buffers (`connection::idle`); 0 = always.
    pub idle_release_connections: usize,
    /// Slowest request body accepted (slow-POST defence); `None`: no floor.
    pub body_rate_min: Option<crate::relay::MinRate>,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub client_header: Duration,
    pub client_body: Duration,
    pub client_idle: Duration,
    pub client_send: Duration,
    /// Lingering close, in total; zero: no lingering.
    pub client_linger: Duration,
    /// Lingering ends after this long without a byte.
    pub client_linger_idle: Duration,
    pub tls_handshake: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub upstream_idle: Duration,
    pub tunnel_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    /// Certificates when the listener speaks HTTPS.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Client IPs let in; others are closed at accept, before any byte is read.
    pub access: crate::gateway::access::IpRules,
}

/// One problem in a file: the key path (`upstream[0].server[1].address`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    /// 1-based line of the problem, when the TOML parser knows it.
    pub line: Option<usize>,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            line: None,
        }
    }
}

/// Every problem found in one file, each printed as `FILE[:LINE]: KEY: PROBLEM`.
#[derive(Debug)]
pub struct LoadError {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = e.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}: {}", e.key, e.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Largest config file, and largest file a config names (certificates, keys, JWKS, CA bundles).
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Read a file named by the operator, refusing what is not a regular file (a FIFO would block,
/// `/dev/zero` would never end) and anything over `max` bytes. The error says why, without the
/// path (callers add it).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut out))
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(out)
}

/// Read, parse and validate a config file.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = read_bounded(path, FILE_BYTES_MAX)
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
        .map_err(|e| LoadError {
            file: path.to_path_buf(),
            errors: vec![ConfigError::new("(file)", format!("cannot read: {e}"))],
        })?;
    from_toml(&text, path)
}

/// Parse and validate TOML text; `path` is only used in messages and to resolve relative paths.
pub fn from_toml(text: &str, path: &Path) -> Result<Config, LoadError> {
    let wrap = |errors| LoadError {
        file: path.to_path_buf(),
        errors,
    };
    let file = parse(text).map_err(|e| wrap(vec![e]))?;
    let mut config = validate::build(file, path).map_err(wrap)?;
    config.document = text.parse().unwrap_or_default();
    Ok(config)
}

fn parse(text: &str) -> Result<file::FileConfig, ConfigError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| toml_error(text, "(file)", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        toml_error(text, &key, e.inner())
    })
}

fn toml_error(text: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let key = match key {
        "." => "(file)".to_string(),
        _ => quote_empty_segments(key),
    };
    ConfigError {
        key,
        problem: e.message().trim().to_string(),
        line,
    }
}

/// A key path with its empty segments (a quoted empty TOML key, `"" = 1`) written as `""`, so
/// that the error names a key the user can find: `""`, `server.""`.
fn quote_empty_segments(key: &str) -> String {
    key.split('.')
        .map(|seg| if seg.is_empty() { "\"\"" } else { seg })
        .collect::<Vec<_>>()
        .join(".")
}

/// A path from the config file, relative to the file's directory unless absolute.
pub fn relative_to(config_file: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    config_file
        .parent()
        .map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
}

impl Config {
    pub fn upstream_id(&self, name: &str) -> Option<UpstreamId> {
        self.upstreams.iter().position(|u| u.name == name)
    }
}
