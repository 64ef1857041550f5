//! Servers given by hostname: resolved at start and re-resolved on an interval off the shards,
//! so a DNS change reaches traffic without a restart. The proxy runs in a private mount
//! namespace whose /etc/hosts is a file this test rewrites.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

/// `unshare` wrapper that bind-mounts `hosts` over /etc/hosts, then execs the proxy; `None`
/// where mount namespaces are not available to this user.
fn private_hosts(hosts: &str) -> Option<Vec<String>> {
    let root = is_root();
    let ns = if root { "-m" } else { "-rm" };
    let probe = Command::new("unshare").args([ns, "true"]).status();
    if !matches!(probe, Ok(s) if s.success()) {
        return None;
    }
    let script = format!("mount --bind {hosts} /etc/hosts && exec \"$0\" \"$@\"");
    Some(vec![
        "unshare".into(),
        ns.into(),
        "sh".into(),
        "-c".into(),
        script,
    ])
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Origin "a" on 127.0.0.1 and origin "b" on 127.0.0.2, on one port, and a hosts file that
/// names a as `backend.coregate.test`, with the wrapper that mounts it over /etc/hosts.
struct TwoHosts {
    a: Origin,
    b: Origin,
    port: u16,
    /// The hosts file's directory (`{tag}-{pid}` in the temp directory).
    dir: PathBuf,
    hosts: PathBuf,
    wrapper: Vec<String>,
}

/// `TwoHosts`, or `None` (said on stderr) where mount namespaces are not available to this
/// user.
fn two_hosts(tag: &str) -> Option<TwoHosts> {
    let (a, b) = Origin::pair_on_one_port(
        |_| Reply::Bytes(response(200, &[("X-Origin", "a")], b"x")),
        |_| Reply::Bytes(response(200, &[("X-Origin", "b")], b"x")),
    );
    let port = a.addr.port();
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 backend.coregate.test\n").unwrap();
    let Some(wrapper) = private_hosts(hosts.to_str().unwrap()) else {
        eprintln!("SKIPPED: no mount namespace (unshare) for this user; DNS change untested");
        return None;
    };
    Some(TwoHosts {
        a,
        b,
        port,
        dir,
        hosts,
        wrapper,
    })
}

#[test]
fn a_dns_change_reaches_traffic_without_restart() {
    let Some(h) = two_hosts("coregate-dns") else {
        return;
    };
    let port = h.port;
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\nname = \"app\"\n\
resolve_interval_ms = 100\n[[upstream.server]]\naddress = \"backend.coregate.test:{port}\"\n\
[[route]]\nupstream = \"app\"\n"
    );
    // The config is validated (and the name resolved) inside the namespace too.
    let wrapper: Vec<&str> = h.wrapper.iter().map(String::as_str).collect();
    let proxy = Proxy::start_under(&toml, Driver::Auto, &wrapper);
    let mut c = Client::connect(proxy.addr());
    for _ in 0..5 {
        assert_eq!(c.get("/").origin(), "a");
    }
    // Rewritten in place: the bind mount follows the inode.
    std::fs::write(&h.hosts, "127.0.0.2 backend.coregate.test\n").unwrap();
    wait_until(
        Duration::from_secs(10),
        "traffic moves to the new address",
        || c.get("/").origin() == "b",
    );
    assert!(
        proxy.log().contains("server address changed"),
        "{}",
        proxy.log()
    );
    for _ in 0..5 {
        assert_eq!(
            c.get("/").origin(),
            "b",
            "idle connections to the old address are gone"
        );
    }
    assert!(h.b.request_count() >= 6);
    std::fs::remove_dir_all(&h.dir).unwrap();
}

#[test]
fn after_a_reload_the_dns_thread_follows_the_new_hostnames() {
    let Some(h) = two_hosts("coregate-dns-reload") else {
        return;
    };
    let port = h.port;
    let config = |server: &str| {
        format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\nname = \"app\"\n\
resolve_interval_ms = 100\n[[upstream.server]]\naddress = \"{server}\"\n\
[[route]]\nupstream = \"app\"\n"
        )
    };
    // At start: an IP only, so no DNS thread runs.
    let wrapper: Vec<&str> = h.wrapper.iter().map(String::as_str).collect();
    let proxy = Proxy::start_under(&config(&h.a.addr.to_string()), Driver::Auto, &wrapper);
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/").origin(), "a");
    proxy.write_config(&config(&format!("backend.coregate.test:{port}")));
    proxy.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the reload", || {
        proxy.log().contains("reload complete")
    });
    assert_eq!(
        c.get("/").origin(),
        "a",
        "the hostname resolves to a for now"
    );
    std::fs::write(&h.hosts, "127.0.0.2 backend.coregate.test\n").unwrap();
    wait_until(
        Duration::from_secs(10),
        "traffic follows the hostname named by the reloaded config",
        || c.get("/").origin() == "b",
    );
    assert!(h.b.request_count() >= 1);
    std::fs::remove_dir_all(&h.dir).unwrap();
}
