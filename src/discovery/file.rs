//! The `servers_file` format: one server per line, `ADDRESS [WEIGHT]`, `#` starts a comment,
//! blank lines are ignored. `ADDRESS` is `IP:port` or `host:port` (a hostname is resolved
//! when the file is read: at load, and on the discovery thread after a change).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use crate::config::defaults as d;

/// One server of a file (or of a DNS answer): as written, its address, its weight.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub address: String,
    pub addr: SocketAddr,
    pub weight: u32,
}

/// Parse the text of a servers file: (address as written, weight) per server, or the first
/// problem as `line N: …`.
pub fn parse(text: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let address = words.next().unwrap_or_default();
        let weight = match words.next() {
            None => d::SERVER_WEIGHT,
            Some(w) => match w.strip_prefix("weight=").unwrap_or(w).parse::<u32>() {
                Ok(w) if (1..=d::WEIGHT_MAX).contains(&w) => w,
                _ => {
                    return Err(format!(
                        "line {}: weight \"{w}\" is not in 1..={}",
                        n + 1,
                        d::WEIGHT_MAX
                    ))
                }
            },
        };
        if words.next().is_some() {
            return Err(format!("line {}: expected \"ADDRESS [WEIGHT]\"", n + 1));
        }
        if !address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
        {
            return Err(format!("line {}: \"{address}\" is not host:port", n + 1));
        }
        if out.iter().any(|(a, _)| a == address) {
            return Err(format!("line {}: \"{address}\" is listed twice", n + 1));
        }
        if out.len() >= d::SERVERS_PER_UPSTREAM_MAX {
            return Err(format!("more than {} servers", d::SERVERS_PER_UPSTREAM_MAX));
        }
        out.push((address.to_string(), weight));
    }
    Ok(out)
}

/// Read, parse and resolve a servers file (blocking: at load, or on the discovery thread).
pub fn read(path: &Path) -> Result<Vec<Found>, String> {
    let text = crate::config::read_bounded(path, d::SERVERS_FILE_BYTES_MAX)
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    for (address, weight) in parse(&text)? {
        let addr = match address.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => address
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("cannot resolve \"{address}\""))?,
        };
        out.push(Found {
            address,
            addr,
            weight,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_weights_and_comments() {
        let got =
            parse("# pool\n127.0.0.1:9001\n\n 127.0.0.1:9002 3 # big\n127.0.0.1:9003 weight=2\n")
                .unwrap();
        assert_eq!(
            got,
            [
                ("127.0.0.1:9001".to_string(), 1),
                ("127.0.0.1:9002".to_string(), 3),
                ("127.0.0.1:9003".to_string(), 2)
            ]
        );
        assert_eq!(parse("").unwrap(), []);
        assert!(parse("127.0.0.1:9001 0").unwrap_err().starts_with("line 1"));
        assert!(parse("x\n127.0.0.1").unwrap_err().starts_with("line 1"));
        assert!(parse("a:1\na:1").unwrap_err().contains("twice"));
        assert!(parse("a:1 2 3").is_err());
        assert!(parse("a:0").is_err());
    }
}
