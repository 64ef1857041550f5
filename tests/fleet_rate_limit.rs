//! Global rate limits through a real Redis (a `redis-server` per test): two coregate processes
//! sharing one Redis hold one limit under load spread over both; Redis killed mid-test → the
//! configured fallback at once, no request hangs; Redis back → global limiting resumes; a
//! Redis that hangs (SIGSTOP) costs a request at most `redis_timeout_ms`.

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use support::redis::RedisServer;
use support::*;

const SHARDS: usize = 2;
const LIMIT: usize = 400;

/// One policy per fallback on its own route: /local, /open, /closed.
fn config(redis: &str, timeout_ms: u64, lease: usize) -> String {
    let mut s =
        format!("[server]\nworkers = {SHARDS}\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n");
    for fallback in ["local", "open", "closed"] {
        s.push_str(&format!(
            r#"[[rate_limit]]
name = "g-{fallback}"
key = "header:x-key"
rate = {LIMIT}
period_ms = 600000
scope = "global"
redis = "{redis}"
redis_timeout_ms = {timeout_ms}
redis_fallback = "{fallback}"
lease_tokens = {lease}

[[route]]
path_prefix = "/{fallback}"
rate_limit = "g-{fallback}"
respond = {{ status = 200, body = "ok" }}

"#
        ));
    }
    s
}

#[derive(Debug, Default)]
struct Counts {
    ok: usize,
    limited: usize,
    unavailable: usize,
    slowest: Duration,
}

/// `total` GETs of `path` with `X-Key: key`, from `threads` threads, each with one connection
/// to every address in `addrs`, taking turns; counted by status.
fn load(addrs: &[SocketAddr], path: &str, key: &str, total: usize, threads: usize) -> Counts {
    let per = total / threads;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (addrs, path, key) = (addrs.to_vec(), path.to_string(), key.to_string());
            thread::spawn(move || {
                let mut conns: Vec<Client> = addrs.iter().map(|a| Client::connect(*a)).collect();
                let mut c = Counts::default();
                let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Key: {key}\r\n\r\n");
                for i in 0..per {
                    let started = Instant::now();
                    let n = conns.len();
                    let r = conns[(i + t) % n].request(&req);
                    c.slowest = c.slowest.max(started.elapsed());
                    match r.status {
                        200 => c.ok += 1,
                        429 => c.limited += 1,
                        503 => {
                            assert_eq!(r.header("retry-after"), Some("1"));
                            c.unavailable += 1
                        }
                        s => panic!("unexpected status {s}"),
                    }
                }
                c
            })
        })
        .collect();
    let mut sum = Counts::default();
    for w in workers {
        let c = w.join().expect("load thread");
        sum.ok += c.ok;
        sum.limited += c.limited;
        sum.unavailable += c.unavailable;
        sum.slowest = sum.slowest.max(c.slowest);
    }
    sum
}

/// Wait until every shard of `proxy` has logged `n` Redis connections per policy.
fn wait_connected(proxy: &Proxy, n: usize) {
    let want = n * SHARDS * 3;
    wait_until(Duration::from_secs(15), "redis connections", || {
        proxy.log().matches("redis connected").count() >= want
    });
}

/// Two nodes on `toml`, one on io_uring and the other on epoll (the Redis client runs on both
/// drivers), once each has connected to Redis.
fn two_nodes(toml: &str) -> (Proxy, Proxy) {
    let (a, b) = (Proxy::start(toml), Proxy::start_with(toml, Driver::Legacy));
    wait_connected(&a, 1);
    wait_connected(&b, 1);
    (a, b)
}

#[test]
fn two_nodes_sharing_redis_hold_one_global_limit() {
    let redis = RedisServer::start();
    let toml = config(&redis.url(), 2000, 4);
    let (a, b) = two_nodes(&toml);
    let before = redis.calls("evalsha");
    let c = load(&[a.addr(), b.addr()], "/local", "k1", 3 * LIMIT, 8);
    let trips = redis.calls("evalsha") - before;
    eprintln!(
        "2 nodes × {SHARDS} shards, lease 4: {} of {} admitted (limit {LIMIT}); \
         {trips} EVALSHA = {:.0} Redis round trips per 1,000 rate-limited requests",
        c.ok,
        3 * LIMIT,
        trips as f64 * 1000.0 / (3 * LIMIT) as f64
    );
    assert!(within_10_percent(c.ok, LIMIT), "{c:?}");
    assert_eq!(c.ok + c.limited, 3 * LIMIT);
    // Batching: at most one round trip per lease of 4 admitted, plus one refusal per shard.
    assert!(
        trips as usize <= LIMIT / 4 + 2 * SHARDS * 4,
        "{trips} round trips"
    );
    // The bucket lives in Redis under the policy's hash tag.
    let keys = redis.cli(&["--scan", "--pattern", "coregate:rl:*"]);
    assert!(keys.contains("coregate:rl:{g-local}:k:k1"), "{keys}");
}

#[test]
fn redis_killed_falls_back_then_global_limiting_resumes() {
    let mut redis = RedisServer::start();
    let toml = config(&redis.url(), 2000, 4);
    let (a, b) = two_nodes(&toml);
    let both = [a.addr(), b.addr()];
    let c = load(&both, "/local", "before", 2 * LIMIT, 4);
    assert!(
        within_10_percent(c.ok, LIMIT),
        "global before the kill: {c:?}"
    );

    redis.kill();
    // Every shard notices the closed connection without waiting for a request.
    wait_until(Duration::from_secs(10), "fallback logged", || {
        a.log().matches("redis unavailable").count() >= SHARDS * 3
            && b.log().matches("redis unavailable").count() >= SHARDS * 3
    });
    // local: each node applies the limit on its own.
    let ca = load(&[a.addr()], "/local", "during", 2 * LIMIT, 4);
    let cb = load(&[b.addr()], "/local", "during", 2 * LIMIT, 4);
    eprintln!("Redis down, fallback local: node a {ca:?}, node b {cb:?}");
    assert!(within_10_percent(ca.ok, LIMIT) && within_10_percent(cb.ok, LIMIT));
    // open and closed answer at once: 200 all the way, or 503 + Retry-After.
    let open = load(&both, "/open", "during", 2 * LIMIT, 4);
    assert_eq!(open.ok, 2 * LIMIT, "{open:?}");
    let closed = load(&both, "/closed", "during", LIMIT, 4);
    assert_eq!(closed.unavailable, LIMIT, "{closed:?}");
    for c in [&ca, &cb, &open, &closed] {
        assert!(c.slowest < Duration::from_secs(2), "a request hung: {c:?}");
    }

    redis.restart();
    wait_connected(&a, 2);
    wait_connected(&b, 2);
    let after = load(&both, "/local", "after", 2 * LIMIT, 4);
    eprintln!("Redis back: {after:?}");
    assert!(
        within_10_percent(after.ok, LIMIT),
        "global again: {after:?}"
    );
    let closed = load(&both, "/closed", "after", LIMIT, 4);
    assert_eq!(
        closed.unavailable, 0,
        "closed limits globally again: {closed:?}"
    );
    assert!(within_10_percent(closed.ok, LIMIT), "{closed:?}");
}

#[test]
fn a_hung_redis_costs_at_most_the_timeout() {
    let redis = RedisServer::start();
    let toml = config(&redis.url(), 300, 4);
    let a = Proxy::start(&toml);
    wait_connected(&a, 1);
    redis.set_running(false);
    let c = load(&[a.addr()], "/local", "hung", LIMIT, 4);
    eprintln!("Redis stopped (SIGSTOP), timeout 300 ms: {c:?}");
    assert!(within_10_percent(c.ok, LIMIT), "{c:?}");
    assert!(c.slowest < Duration::from_millis(1500), "{c:?}");
    redis.set_running(true);
    wait_until(Duration::from_secs(15), "reconnected", || {
        a.log().matches("redis connected").count() > SHARDS * 3
    });
}

#[test]
fn redis_cluster_redirections_are_followed_and_a_policy_lives_in_one_slot() {
    let (n1, n2) = (
        RedisServer::start_cluster_node(),
        RedisServer::start_cluster_node(),
    );
    assert!(n1
        .cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"])
        .contains("OK"));
    assert!(n2
        .cli(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"])
        .contains("OK"));
    let p2 = n2.port.to_string();
    assert!(n1
        .cli(&["CLUSTER", "MEET", "127.0.0.1", &p2, n2.bus_port()])
        .contains("OK"));
    wait_until(Duration::from_secs(15), "cluster state ok", || {
        [&n1, &n2]
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    });
    let slot: u32 = n1
        .cli(&["CLUSTER", "KEYSLOT", "g-local"])
        .trim()
        .parse()
        .unwrap();
    let (owner, other) = if slot <= 8191 { (&n1, &n2) } else { (&n2, &n1) };
    // coregate is pointed at the node that does not hold the policy's slot.
    let a = Proxy::start(&config(&other.url(), 2000, 4));
    wait_connected(&a, 1);
    let c = load(&[a.addr()], "/local", "clustered", 2 * LIMIT, 4);
    eprintln!("Redis Cluster, sent to the other node first: {c:?}");
    assert!(within_10_percent(c.ok, LIMIT), "{c:?}");
    assert!(a.log().contains("redis cluster: MOVED"));
    let scan = |n: &RedisServer| n.cli(&["--scan", "--pattern", "coregate:rl:*"]);
    assert!(scan(owner).contains("coregate:rl:{g-local}:k:clustered"));
    assert!(scan(other).trim().is_empty(), "{}", scan(other));
    assert!(owner.calls("evalsha") > 0);
}

/// The README's figure: Redis round trips (EVALSHA, counted by Redis itself) per 1,000
/// rate-limited requests, two nodes of two shards, a burst of 3 × the limit, by lease size.
#[test]
fn redis_round_trips_per_thousand_requests_by_lease_size() {
    const BIG: usize = 1000;
    for lease in [1, 10, 100] {
        let redis = RedisServer::start();
        let toml = config(&redis.url(), 2000, lease)
            .replace(&format!("rate = {LIMIT}\n"), &format!("rate = {BIG}\n"));
        let (a, b) = two_nodes(&toml);
        let started = Instant::now();
        let c = load(&[a.addr(), b.addr()], "/local", "m", 3 * BIG, 8);
        // The bucket refills at BIG per 600 s while the burst runs.
        let refilled = (started.elapsed().as_secs_f64() * BIG as f64 / 600.0).ceil() as usize;
        let trips = redis.calls("evalsha") as usize;
        eprintln!(
            "lease_tokens = {lease}: {} of {} admitted (limit {BIG}); {trips} round trips = \
             {:.1} per 1,000 requests, {:.1} per 1,000 admitted",
            c.ok,
            3 * BIG,
            trips as f64 * 1000.0 / (3 * BIG) as f64,
            trips as f64 * 1000.0 / c.ok as f64
        );
        // Never more than the limit (and its refill); short of it by at most the unspent leases.
        assert!(
            c.ok <= BIG + refilled && c.ok + 2 * SHARDS * lease >= BIG,
            "{c:?}"
        );
        // One round trip per lease, plus a refusal per shard and a few leases cut short.
        let nodes_shards = 2 * SHARDS;
        let most = (BIG + refilled).div_ceil(lease) + (1 + refilled) * 2 * nodes_shards;
        assert!(
            trips <= most,
            "{trips} round trips, expected at most {most}"
        );
    }
}

#[test]
fn redis_killed_under_load_no_request_hangs() {
    let mut redis = RedisServer::start();
    let toml = config(&redis.url(), 2000, 4);
    let (a, b) = two_nodes(&toml);
    let both = [a.addr(), b.addr()];
    let running = thread::spawn(move || load(&both, "/local", "mid", 5 * LIMIT, 8));
    // Kill it while the load is leasing from it.
    wait_until(Duration::from_secs(20), "leases under way", || {
        redis.calls("evalsha") >= 20
    });
    redis.kill();
    let c = running.join().expect("load");
    eprintln!("Redis killed under load: {c:?}");
    assert_eq!(c.ok + c.limited, 5 * LIMIT, "only 200s and 429s: {c:?}");
    assert!(c.slowest < Duration::from_secs(2), "a request hung: {c:?}");
    // Before the kill Redis granted at most the limit; after it each node had its own.
    assert!(c.ok <= 3 * LIMIT + LIMIT / 10, "{c:?}");
    assert!(a.log().contains("redis unavailable") && b.log().contains("redis unavailable"));
}
