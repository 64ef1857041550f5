//! A small Redis client for the global rate limiter, on monoio sockets. No maintained Redis
//! client runs on monoio (redis-rs and fred need tokio or async-std), and the limiter needs
//! little: connect, `AUTH`/`SELECT`, `SCRIPT LOAD` and `EVALSHA` of one Lua script, and the
//! `MOVED` redirection of Redis Cluster. `resp` is the wire format, `conn` one connection;
//! this file holds the target (parsed from the `redis` URL at load), the script and the keys.

pub mod conn;
pub mod resp;

use std::net::{SocketAddr, ToSocketAddrs};

/// Where a policy's Redis is, from `redis = "redis://[[user]:password@]host[:port][/db]"`.
/// Its `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `host:port` as written, for logs.
    pub address: String,
    /// Resolved at load (never on a shard).
    pub addr: SocketAddr,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("address", &self.address)
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .finish()
    }
}

/// The token bucket, run atomically by Redis. KEYS[1] is the bucket (a hash of `t` tokens
/// and `at` µs); ARGV: tokens per µs, burst, tokens wanted. Time is Redis's own (`TIME`), so
/// nodes with skewed clocks agree. Returns {granted, whole tokens left, µs until the next
/// token, µs until full}. The key expires once the bucket would be full again: a missing key
/// is a full bucket.
pub const BUCKET_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
local full = math.min(math.ceil((burst - tokens) / rate), 1e14)
local wait = 0
if tokens < 1 then wait = math.min(math.ceil((1 - tokens) / rate), 1e14) end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.floor(full / 1000) + 1000)
return {granted, math.floor(tokens), wait, full}
"#;

/// Keys longer than this are stored by their SHA-256 instead of as they are.
const KEY_BYTES_RAW_MAX: usize = 128;

/// The Redis key of one rate-limit key of policy `policy`. The policy name is the Cluster hash
/// tag (`{…}`), so every key of a policy lives in one slot, on one node.
pub fn bucket_key(policy: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + policy.len() + key.len().min(80));
    out.extend_from_slice(b"coregate:rl:{");
    out.extend_from_slice(policy.as_bytes());
    out.extend_from_slice(b"}:");
    if key.len() <= KEY_BYTES_RAW_MAX {
        out.extend_from_slice(b"k:");
        out.extend_from_slice(key);
    } else {
        out.extend_from_slice(b"h:");
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
        for b in d.as_ref() {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
    }
    out
}

/// The node a `MOVED slot host:port` error names (IP addresses only: a shard cannot resolve).
pub fn moved_to(error: &str) -> Option<SocketAddr> {
    let mut words = error.split_whitespace();
    if words.next()? != "MOVED" {
        return None;
    }
    words.nth(1)?.parse().ok()
}

/// Parse a `redis://` URL (at load). The error says what is wrong, for the config message.
pub fn parse_url(url: &str) -> Result<RedisTarget, String> {
    let rest = match url.split_once("://") {
        Some(("redis", rest)) => rest,
        Some(("rediss", _)) => return Err("TLS to Redis (rediss://) is not supported".into()),
        _ => return Err(format!("\"{url}\" is not a redis://host:port URL")),
    };
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, "")) => (h, 0),
        Some((h, db)) => (
            h,
            db.parse()
                .map_err(|_| format!("database \"{db}\" is not a number"))?,
        ),
        None => (hostpart, 0),
    };
    let (username, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some(("", p)) => (None, Some(p.to_string())),
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (None, Some(a.to_string())),
        },
    };
    let has_port = match hostport.rsplit_once(':') {
        Some((h, p)) => p.parse::<u16>().is_ok() && (!h.starts_with('[') || h.ends_with(']')),
        None => false,
    };
    let address = if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    if hostport.is_empty() {
        return Err("the URL names no host".into());
    }
    let addr = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve \"{address}\""))?;
    Ok(RedisTarget {
        address,
        addr,
        username,
        password,
        db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((t.addr.port(), t.db, t.password), (6380, 2, None));
        let t = parse_url("redis://:s3cret@127.0.0.1").unwrap();
        assert_eq!(
            (t.addr.port(), t.password.as_deref()),
            (6379, Some("s3cret"))
        );
        let t = parse_url("redis://app:p@ss@127.0.0.1:7000").unwrap();
        assert_eq!(t.username.as_deref(), Some("app"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(parse_url("rediss://127.0.0.1").unwrap_err().contains("TLS"));
        assert!(parse_url("http://127.0.0.1").is_err());
        assert!(parse_url("redis://127.0.0.1:6379/x").is_err());
        assert!(parse_url("redis://").is_err());
        assert_eq!(parse_url("redis://[::1]").unwrap().addr.port(), 6379);
        assert_eq!(parse_url("redis://[::1]:7000").unwrap().addr.port(), 7000);
        let t = parse_url("redis://:hunter2@127.0.0.1").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn keys_share_their_policy_slot_and_stay_short() {
        assert_eq!(
            bucket_key("per-ip", b"10.0.0.1"),
            b"coregate:rl:{per-ip}:k:10.0.0.1"
        );
        let long = bucket_key("p", &[b'x'; 1000]);
        assert!(long.starts_with(b"coregate:rl:{p}:h:") && long.len() == 18 + 64);
        assert_ne!(long, bucket_key("p", &[b'y'; 1000]));
    }

    #[test]
    fn moved_redirections() {
        assert_eq!(
            moved_to("MOVED 3999 127.0.0.1:6381"),
            Some("127.0.0.1:6381".parse().unwrap())
        );
        assert_eq!(moved_to("ASK 3999 127.0.0.1:6381"), None);
        assert_eq!(moved_to("MOVED 3999 redis-2:6381"), None);
    }
}
