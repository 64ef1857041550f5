//! Rate limits end to end: the node-wide count when one client comes through one connection
//! and when its connections are spread over every shard, the RateLimit-* and Retry-After
//! fields, and bounded memory under a flood of distinct keys.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// Shards in these tests: more than the machine's cores is fine, and makes leasing busier.
const SHARDS: usize = 4;
const LIMIT: usize = 100;

fn config(extra_policy: &str) -> String {
    config_with(LIMIT, extra_policy)
}

fn config_with(limit: usize, extra_policy: &str) -> String {
    format!(
        r#"[server]
workers = {SHARDS}

[[listener]]
listen = "127.0.0.1:0"

[[rate_limit]]
name = "per-ip"
key = "client_ip"
rate = {limit}
period_ms = 600000
burst = {limit}
{extra_policy}

[[route]]
path_prefix = "/"
rate_limit = "per-ip"
respond = {{ status = 200, body = "ok" }}
"#
    )
}

/// Send `n` GETs round-robin over `conns` and count the answers by status.
fn burst(conns: &mut [Client], n: usize) -> (usize, usize, Vec<Response>) {
    let (mut ok, mut limited, mut refused) = (0, 0, Vec::new());
    for i in 0..n {
        let c = &mut conns[i % conns.len()];
        let r = c.get("/x");
        match r.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                if refused.len() < 3 {
                    refused.push(r);
                }
            }
            s => panic!("unexpected status {s}"),
        }
    }
    (ok, limited, refused)
}

#[test]
fn one_connection_sees_the_node_wide_limit_with_fields() {
    let proxy = Proxy::start(&config(""));
    let mut conns = [Client::connect(proxy.addr())];
    let first = conns[0].get("/x");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-limit"), Some("100"));
    let remaining: u64 = first
        .header("ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!((90..=99).contains(&remaining), "remaining {remaining}");
    let reset: u64 = first.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=600).contains(&reset), "reset {reset}");
    let (ok, limited, refused) = burst(&mut conns, 3 * LIMIT - 1);
    let ok = ok + 1;
    eprintln!(
        "one connection: {ok} of {} admitted (limit {LIMIT})",
        3 * LIMIT
    );
    assert!(within_10_percent(ok, LIMIT), "{ok} admitted");
    assert_eq!(ok + limited, 3 * LIMIT);
    let r = &refused[0];
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=6000).contains(&retry), "retry-after {retry}");
    assert!(r.header("ratelimit-reset").is_some());
}

#[test]
fn connections_spread_over_every_shard_share_one_limit() {
    // Leases travel between shards as messages: check both I/O drivers wake for them.
    spread_over_every_shard(Driver::Auto, LIMIT);
    spread_over_every_shard(Driver::Legacy, LIMIT);
    // A larger burst means leases of several tokens (1000 / (16 × 4) = 15): the tokens leased
    // and not spent when the burst ends are the error, and it stays within the bound.
    spread_over_every_shard(Driver::Auto, 10 * LIMIT);
}

fn spread_over_every_shard(driver: Driver, limit: usize) {
    let proxy = Proxy::start_with(&config_with(limit, ""), driver);
    // Open connections until every shard has accepted some (SO_REUSEPORT spreads them by
    // hash; each shard logs the connections it accepts).
    let mut conns = Vec::new();
    let every_shard = |log: &str| (0..SHARDS).all(|s| log.contains(&format!("shard={s} peer=")));
    while conns.len() < 256 {
        for _ in 0..16 {
            conns.push(Client::connect(proxy.addr()));
        }
        let n = conns.len();
        let seen = poll_until(Duration::from_secs(2), || {
            proxy.log().matches("connection accepted").count() >= n
        });
        assert!(seen, "accepted connections missing from the log");
        if every_shard(&proxy.log()) {
            break;
        }
    }
    assert!(
        every_shard(&proxy.log()),
        "connections never reached every shard"
    );
    let (ok, limited, refused) = burst(&mut conns, 3 * limit);
    eprintln!(
        "{driver:?}: {} connections over {SHARDS} shards: {ok} of {} admitted (limit {limit})",
        conns.len(),
        3 * limit
    );
    assert!(within_10_percent(ok, limit), "{ok} admitted");
    assert_eq!(ok + limited, 3 * limit);
    assert!(refused.iter().all(|r| r.header("retry-after").is_some()));
}

#[test]
fn shard_scope_multiplies_the_limit_by_the_shards() {
    // The documented alternative: independent buckets per shard. One connection lives on one
    // shard, so it sees exactly one shard's bucket.
    let proxy = Proxy::start(&config("scope = \"shard\""));
    let mut conns = [Client::connect(proxy.addr())];
    let (ok, _, _) = burst(&mut conns, 2 * LIMIT);
    assert_eq!(ok, LIMIT);
}

/// Pipeline `n` requests with distinct `x-key` values `from..from + n` over one connection and
/// wait for every answer; returns how many were admitted.
fn flood(addr: std::net::SocketAddr, from: usize, n: usize) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = {
        let mut r = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let (mut answers, mut ok, mut buf, mut tail) = (0, 0, vec![0u8; 1 << 16], Vec::new());
            while answers < n {
                let got = r.read(&mut buf).expect("read answers");
                assert!(got > 0, "proxy closed after {answers} answers");
                tail.extend_from_slice(&buf[..got]);
                let mut start = 0;
                while let Some(p) = tail[start..].windows(9).position(|w| w == b"HTTP/1.1 ") {
                    let at = start + p;
                    if tail.len() < at + 12 {
                        break;
                    }
                    answers += 1;
                    ok += usize::from(&tail[at + 9..at + 12] == b"200");
                    start = at + 12;
                }
                tail.drain(..start);
            }
            ok
        })
    };
    let mut batch = Vec::with_capacity(1 << 17);
    for k in from..from + n {
        batch.extend_from_slice(b"GET /f HTTP/1.1\r\nHost: h\r\nX-Key: k");
        batch.extend_from_slice(k.to_string().as_bytes());
        batch.extend_from_slice(b"\r\n\r\n");
        if batch.len() > 1 << 16 {
            s.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    s.write_all(&batch).unwrap();
    reader.join().unwrap()
}

#[test]
fn a_million_distinct_keys_keep_memory_bounded() {
    let cfg = r#"[server]
workers = 2

[[listener]]
listen = "127.0.0.1:0"

[[rate_limit]]
name = "per-key"
key = "header:x-key"
rate = 1
period_ms = 600000
keys_max = 10000

[[route]]
path_prefix = "/"
rate_limit = "per-key"
respond = { status = 200, body = "ok" }
"#;
    let proxy = Proxy::start(cfg);
    const TOTAL: usize = 1_000_000;
    const WARM: usize = 100_000;
    // Warm up past the table bound so that both generations are full, then measure.
    let ok = flood(proxy.addr(), 0, WARM / 2) + flood(proxy.addr(), WARM / 2, WARM / 2);
    assert_eq!(ok, WARM, "each new key has a full bucket");
    let warm_rss = rss_kib(proxy.pid());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = proxy.addr();
            let per = (TOTAL - WARM) / 4;
            std::thread::spawn(move || flood(addr, WARM + t * per, per))
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, TOTAL - WARM);
    let end_rss = rss_kib(proxy.pid());
    eprintln!("rss after {WARM} keys: {warm_rss} KiB; after {TOTAL}: {end_rss} KiB");
    // Unbounded tables would hold 1M buckets and leases: tens of MiB more.
    assert!(
        end_rss < warm_rss + 16 * 1024,
        "rss grew from {warm_rss} to {end_rss} KiB"
    );
    // A key seen early was evicted and is full again; a key used twice now is limited.
    let mut c = Client::connect(proxy.addr());
    let again = |c: &mut Client, k: &str| {
        c.request(&format!("GET /f HTTP/1.1\r\nHost: h\r\nX-Key: {k}\r\n\r\n"))
            .status
    };
    assert_eq!(again(&mut c, "fresh"), 200);
    assert_eq!(again(&mut c, "fresh"), 429);
}
