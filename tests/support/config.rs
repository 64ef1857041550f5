//! Configs for the proxy under test: the temporary config file, builders for the common
//! shapes (one upstream routed at "/"), and ports for a config to name.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{Origin, NEXT_ID};

pub fn write_temp_config(toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("coregate-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{}-{}.toml",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, toml).unwrap();
    path
}

/// A config with one listener on port 0 and one upstream "app" over `origins`, routed at "/".
pub fn simple_config(origins: &[SocketAddr], extra: &str) -> String {
    let mut s = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n");
    s.push_str("[[upstream]]\nname = \"app\"\n");
    for o in origins {
        s.push_str(&format!("[[upstream.server]]\naddress = \"{o}\"\n"));
    }
    s.push_str("\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n\n");
    s.push_str(extra);
    s
}

/// A config with one listener on port 0 and one upstream "app" routed at "/": `keys` are the
/// upstream's own keys (balance, retries…), `servers` its (address, weight) list, `tables` its
/// sub-tables (`[upstream.health]`…), and `extra` anything after the route (`[server]`…).
pub fn lb_config(keys: &str, servers: &[(SocketAddr, u32)], tables: &str, extra: &str) -> String {
    let mut s = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n");
    s.push_str(&format!("[[upstream]]\nname = \"app\"\n{keys}\n"));
    for (addr, weight) in servers {
        s.push_str(&format!(
            "[[upstream.server]]\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    s.push_str(tables);
    s.push_str("\n\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n\n");
    s.push_str(extra);
    s
}

/// Every server with weight 1.
pub fn weight1(origins: &[&Origin]) -> Vec<(SocketAddr, u32)> {
    origins.iter().map(|o| (o.addr, 1)).collect()
}

/// A config with one shard (so that every request sees the same cache), one listener on
/// port 0 and one upstream "app" over `origin`, routed at "/" with the route keys
/// `route_keys` (e.g. `cache = { ttl_s = 60 }`); `extra` goes after the route.
pub fn cached_config(origin: SocketAddr, route_keys: &str, extra: &str) -> String {
    format!(
        "[server]\nworkers = 1\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{origin}\"\n\n\
[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"app\"\n{route_keys}\n\n{extra}"
    )
}

/// A port free right now, for a listener the test's config names (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP port with nothing listening: connects to it are refused. The port stays bound (not
/// listening, without SO_REUSEADDR) for the life of the test process, so that no other test
/// running in parallel gets it from `bind(0)` for an origin: a released port was handed out
/// again, and one test's health checks then connected to another test's origin.
pub fn closed_port() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Held until the process exits.
    std::mem::forget(s);
    addr
}
