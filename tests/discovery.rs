//! Discovery end to end: servers from a watched file added and removed under load with zero
//! failed requests; servers from DNS (every A/AAAA address, and SRV records with weights)
//! served by a DNS server in the test process, following changes without a reload.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::dns::{DnsServer, SrvRecord};
use support::load::Load;
use support::*;

/// Write `text` to `path` the way operators should: a temporary file renamed over it.
fn write_atomically(path: &PathBuf, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "coregate-{tag}-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn changes(proxy: &Proxy) -> usize {
    proxy.log().matches("cluster membership changed").count()
}

#[test]
fn servers_file_changes_under_load_fail_no_request() {
    // a answers slowly, so that requests are in flight to it when it is removed.
    let slow = response(200, &[("X-Origin", "a")], b"x");
    let a = Origin::start(move |_| Reply::Delayed(Duration::from_millis(20), slow.clone()));
    let (b, c) = (Origin::fixed("b", "x"), Origin::fixed("c", "x"));
    let dir = temp_dir("servers-file");
    let file = dir.join("app.servers");
    write_atomically(&file, &format!("# app\n{}\n{} 1\n", a.addr, b.addr));
    let toml = format!(
        "[server]\nworkers = 2\n[discovery]\nfile_poll_ms = 20\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"app\"\nservers_file = \"{}\"\n[[route]]\nupstream = \"app\"\n",
        file.display()
    );
    let proxy = Proxy::start(&toml);
    let load = Load::start(proxy.addr(), "/", 4);
    wait_until(Duration::from_secs(10), "a and b serve", || {
        load.from("a") > 20 && load.from("b") > 50
    });

    // Add c: it gets traffic without a reload.
    write_atomically(&file, &format!("{}\n{}\n{}\n", a.addr, b.addr, c.addr));
    wait_until(Duration::from_secs(10), "c serves", || load.from("c") > 50);
    let a_before = load.from("a");
    wait_until(Duration::from_secs(10), "a still serves", || {
        load.from("a") > a_before + 10
    });
    assert_eq!(changes(&proxy), 1);

    // Remove a: once every shard has the new list, a gets nothing new (a request already on
    // its way to a may still finish there), and a can go away.
    write_atomically(&file, &format!("{}\n{}\n", b.addr, c.addr));
    wait_until(Duration::from_secs(10), "a's removal applied", || {
        changes(&proxy) == 2
    });
    let (a_then, b_then, c_then) = (load.from("a"), load.from("b"), load.from("c"));
    wait_until(Duration::from_secs(10), "b and c carry the load", || {
        load.from("b") > b_then + 100 && load.from("c") > c_then + 100
    });
    assert!(load.from("a") <= a_then + 4, "a still gets traffic");
    a.stop();
    let (b_now, c_now) = (load.from("b"), load.from("c"));
    wait_until(Duration::from_secs(10), "traffic goes on", || {
        load.from("b") > b_now + 100 && load.from("c") > c_now + 100
    });

    // A broken write keeps the last list.
    write_atomically(&file, "not a server list\n");
    wait_until(Duration::from_secs(10), "bad file logged", || {
        proxy
            .log()
            .contains("discovery failed; keeping the last list")
    });
    let t = load.finish();
    eprintln!(
        "file discovery under load: {} ok, by origin {:?}",
        t.ok, t.by_origin
    );
    assert!(
        t.failures.is_empty(),
        "{} failed: {:?}",
        t.failures.len(),
        &t.failures[..t.failures.len().min(5)]
    );
    assert_eq!(changes(&proxy), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two origins on one port, at 127.0.0.1 and 127.0.0.2 (one name, two A records).
fn two_addresses() -> (Origin, Origin) {
    Origin::pair_on_one_port(
        |_| Reply::Bytes(response(200, &[("X-Origin", "a")], b"x")),
        |_| Reply::Bytes(response(200, &[("X-Origin", "b")], b"x")),
    )
}

#[test]
fn dns_discovery_follows_every_address() {
    let dns = DnsServer::start();
    dns.set_addrs("app.svc.test", &["127.0.0.1"]);
    let (a, _b) = two_addresses();
    let toml = format!(
        "[server]\nworkers = 1\n[discovery]\nresolver = \"{}\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"app\"\ndns = \"app.svc.test:{}\"\nresolve_interval_ms = 50\n\
         [[route]]\nupstream = \"app\"\n",
        dns.addr,
        a.addr.port()
    );
    // On the epoll driver (the other tests run on io_uring).
    let proxy = Proxy::start_with(&toml, Driver::Legacy);
    wait_until(Duration::from_secs(10), "first discovery", || {
        changes(&proxy) >= 1
    });
    let mut client = Client::connect(proxy.addr());
    for _ in 0..4 {
        assert_eq!(client.get("/").origin(), "a");
    }
    // Two A records: round robin over both.
    dns.set_addrs("app.svc.test", &["127.0.0.1", "127.0.0.2"]);
    wait_until(Duration::from_secs(10), "second address used", || {
        client.get("/").origin() == "b"
    });
    let seen: Vec<String> = (0..4).map(|_| client.get("/").origin()).collect();
    assert_eq!(seen.iter().filter(|o| *o == "a").count(), 2, "{seen:?}");
    // Only the second: the first leaves.
    dns.set_addrs("app.svc.test", &["127.0.0.2"]);
    wait_until(Duration::from_secs(10), "first address gone", || {
        changes(&proxy) >= 3
    });
    for _ in 0..4 {
        assert_eq!(client.get("/").origin(), "b");
    }
    // A name with no address keeps the last list.
    dns.set_addrs("app.svc.test", &[]);
    wait_until(Duration::from_secs(10), "empty answer logged", || {
        proxy.log().contains("discovery found no servers")
    });
    assert_eq!(client.get("/").origin(), "b");
}

#[test]
fn dns_srv_discovery_uses_weights_and_the_lowest_priority() {
    let dns = DnsServer::start();
    let (a, _b) = two_addresses();
    let c = Origin::fixed("c", "x");
    let port = a.addr.port();
    dns.set_addrs("a.svc.test", &["127.0.0.1"]);
    dns.set_addrs("b.svc.test", &["127.0.0.2"]);
    let srv = |priority, weight, port, target: &str| SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    };
    dns.set_srv(
        "_http._tcp.app.svc.test",
        vec![
            srv(10, 3, port, "a.svc.test"),
            srv(10, 1, port, "b.svc.test"),
            // A backup at a higher priority value: not used while the others exist.
            srv(20, 5, c.addr.port(), "a.svc.test"),
        ],
    );
    let toml = format!(
        "[server]\nworkers = 1\n[discovery]\nresolver = \"{}\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"app\"\nbalance = \"weighted\"\ndns_srv = \"_http._tcp.app.svc.test\"\n\
         resolve_interval_ms = 50\n[[route]]\nupstream = \"app\"\n",
        dns.addr
    );
    let proxy = Proxy::start(&toml);
    wait_until(Duration::from_secs(10), "first discovery", || {
        changes(&proxy) >= 1
    });
    let mut client = Client::connect(proxy.addr());
    let mut count = std::collections::HashMap::<String, usize>::new();
    for _ in 0..400 {
        *count.entry(client.get("/").origin()).or_default() += 1;
    }
    eprintln!("SRV weights 3:1: {count:?}");
    assert_eq!(count.get("a"), Some(&300));
    assert_eq!(count.get("b"), Some(&100));
    // Weights change: 1:1.
    dns.set_srv(
        "_http._tcp.app.svc.test",
        vec![
            srv(10, 1, port, "a.svc.test"),
            srv(10, 1, port, "b.svc.test"),
        ],
    );
    wait_until(Duration::from_secs(10), "new weights", || {
        changes(&proxy) >= 2
    });
    let mut count = std::collections::HashMap::<String, usize>::new();
    for _ in 0..100 {
        *count.entry(client.get("/").origin()).or_default() += 1;
    }
    assert_eq!(
        (count.get("a"), count.get("b")),
        (Some(&50), Some(&50)),
        "{count:?}"
    );
    assert_eq!(c.request_count(), 0, "the backup priority is never used");
}

#[test]
fn discovered_servers_are_health_checked_and_removed_ones_no_longer_probed() {
    let healthy = |name: &'static str| {
        Origin::start(move |_| Reply::Bytes(response(200, &[("X-Origin", name)], b"x")))
    };
    let (a, c) = (healthy("a"), healthy("c"));
    // b serves traffic but fails its health check.
    let b = Origin::start(|r| {
        let status = if r.target == "/healthz" { 503 } else { 200 };
        Reply::Bytes(response(status, &[("X-Origin", "b")], b"x"))
    });
    let dir = temp_dir("servers-health");
    let file = dir.join("app.servers");
    write_atomically(&file, &format!("{}\n{}\n", a.addr, b.addr));
    let toml = format!(
        "[server]\nworkers = 1\n[discovery]\nfile_poll_ms = 20\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"app\"\nservers_file = \"{}\"\n\
         [upstream.health]\ninterval_ms = 30\nunhealthy_threshold = 1\nhealthy_threshold = 1\n\
         [[route]]\nupstream = \"app\"\n",
        file.display()
    );
    let proxy = Proxy::start(&toml);
    wait_until(Duration::from_secs(10), "b marked down", || {
        proxy.log().contains("active check: server down")
    });
    let mut client = Client::connect(proxy.addr());
    for _ in 0..6 {
        assert_eq!(client.get("/").origin(), "a");
    }
    // c joins: probed from the start, and taking traffic.
    write_atomically(&file, &format!("{}\n{}\n{}\n", a.addr, b.addr, c.addr));
    wait_until(Duration::from_secs(10), "c probed", || {
        c.count_to("/healthz") >= 2
    });
    wait_until(Duration::from_secs(10), "c serves", || {
        client.get("/").origin() == "c"
    });
    // b leaves: its probes stop, and it stays down in no one's view.
    write_atomically(&file, &format!("{}\n{}\n", a.addr, c.addr));
    wait_until(Duration::from_secs(10), "b removed", || {
        changes(&proxy) >= 2
    });
    let b_probes = b.count_to("/healthz");
    let a_probes = a.count_to("/healthz");
    wait_until(Duration::from_secs(10), "more probes of a", || {
        a.count_to("/healthz") >= a_probes + 5
    });
    assert!(b.count_to("/healthz") <= b_probes + 1, "b still probed");
    let seen: Vec<String> = (0..6).map(|_| client.get("/").origin()).collect();
    assert!(seen.iter().all(|o| o == "a" || o == "c"), "{seen:?}");
    assert_eq!(
        b.count_to("/") - b.count_to("/healthz"),
        0,
        "b never served"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dns_discovery_takes_ipv6_addresses_too() {
    let dns = DnsServer::start();
    let v6 = Origin::start_on("[::1]:0".parse().unwrap(), |_| {
        Reply::Bytes(response(200, &[("X-Origin", "v6")], b"x"))
    });
    let port = v6.addr.port();
    let v4_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let Ok(listener) = std::net::TcpListener::bind(v4_addr) else {
        eprintln!("SKIPPED: port {port} is taken on 127.0.0.1");
        return;
    };
    drop(listener);
    let v4 = Origin::start_on(v4_addr, |_| {
        Reply::Bytes(response(200, &[("X-Origin", "v4")], b"x"))
    });
    dns.set_addrs("dual.svc.test", &["127.0.0.1", "::1"]);
    let toml = format!(
        "[server]\nworkers = 1\n[discovery]\nresolver = \"{}\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"app\"\ndns = \"dual.svc.test:{port}\"\n[[route]]\nupstream = \"app\"\n",
        dns.addr
    );
    let proxy = Proxy::start(&toml);
    wait_until(Duration::from_secs(10), "first discovery", || {
        changes(&proxy) >= 1
    });
    let mut client = Client::connect(proxy.addr());
    let mut seen: Vec<String> = (0..4).map(|_| client.get("/").origin()).collect();
    seen.sort();
    assert_eq!(seen, ["v4", "v4", "v6", "v6"]);
    drop(v4);
}
