//! The access log, read back and parsed: one line per request (forwarded, answered by
//! coregate, refused while parsing), in the combined format to a file and to stdout, and in
//! JSON with chosen fields, each line matching the request that was made.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use support::*;

/// A combined line taken apart.
#[derive(Debug)]
struct Combined {
    client: String,
    user: String,
    time: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    agent: String,
    extra: HashMap<String, String>,
}

fn parse_combined(line: &str) -> Combined {
    fn bad<T>(line: &str) -> T {
        panic!("not a combined line: {line:?}")
    }
    let (client, rest) = line.split_once(" - ").unwrap_or_else(|| bad(line));
    let (user, rest) = rest.split_once(" [").unwrap_or_else(|| bad(line));
    let (time, rest) = rest.split_once("] \"").unwrap_or_else(|| bad(line));
    let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| bad(line));
    let mut it = rest.splitn(3, ' ');
    let status: u16 = it
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| bad(line));
    let bytes: u64 = it
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| bad(line));
    let rest = it
        .next()
        .and_then(|r| r.strip_prefix('"'))
        .unwrap_or_else(|| bad(line));
    let (referer, rest) = rest.split_once("\" \"").unwrap_or_else(|| bad(line));
    let (agent, rest) = rest.split_once('"').unwrap_or_else(|| bad(line));
    let extra = rest
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| bad(line));
            (k.to_string(), v.to_string())
        })
        .collect();
    Combined {
        client: client.into(),
        user: user.into(),
        time: time.into(),
        request: request.into(),
        status,
        bytes,
        referer: referer.into(),
        agent: agent.into(),
        extra,
    }
}

fn log_path() -> PathBuf {
    let dir = std::env::temp_dir().join("coregate-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!(
        "access-{}-{}.log",
        std::process::id(),
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ))
}

/// Wait until `read` yields at least `n` lines; returns them.
fn lines(n: usize, read: impl Fn() -> String) -> Vec<String> {
    let mut got = Vec::new();
    wait_until(DEADLINE, &format!("{n} access-log lines"), || {
        got = read().lines().map(str::to_string).collect();
        got.len() >= n
    });
    got
}

fn edge_config(origin: &Origin, log: &str) -> String {
    format!(
        "[server]\nworkers = 1\n[log]\n{log}\n\
[[listener]]\nlisten = \"127.0.0.1:0\"\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{}\"\n\
[[upstream]]\nname = \"dead\"\nretries = 0\n[[upstream.server]]\naddress = \"{}\"\n\
[[route]]\npath_prefix = \"/app\"\nupstream = \"app\"\n\
[[route]]\npath_prefix = \"/dead\"\nupstream = \"dead\"\n",
        origin.addr,
        closed_port()
    )
}

#[test]
fn combined_lines_match_the_requests() {
    let origin = Origin::fixed("o", "hello");
    let path = log_path();
    let proxy = Proxy::start(&edge_config(
        &origin,
        &format!("access = \"{}\"", path.display()),
    ));
    let mut c = Client::connect(proxy.addr());
    let r = c.request(
        "GET /app/a?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: test-agent/1 \"q\"\r\n\
Referer: http://ref.example/\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        c.request("HEAD /app/h HTTP/1.1\r\nHost: h\r\n\r\n").status,
        200
    );
    assert_eq!(c.get("/nothing").status, 404);
    assert_eq!(c.get("/dead/x").status, 502);
    let bad = send_raw(proxy.addr(), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&bad), Some(400));

    let got = lines(5, || std::fs::read_to_string(&path).unwrap_or_default());
    assert_eq!(got.len(), 5, "{got:#?}");
    let l: Vec<Combined> = got.iter().map(|l| parse_combined(l)).collect();
    for e in &l {
        assert_eq!(e.client, "127.0.0.1");
        assert_eq!(e.user, "-");
        assert!(
            e.time.len() == 26 && e.time.ends_with(" +0000"),
            "{}",
            e.time
        );
        assert_eq!(e.extra["cache"], "-");
        assert!(e.extra["total_ms"].parse::<f64>().is_ok());
    }
    let upstream = origin.addr.to_string();
    assert_eq!(l[0].request, "GET /app/a?x=1 HTTP/1.1");
    assert_eq!((l[0].status, l[0].bytes), (200, 5));
    assert_eq!(l[0].referer, "http://ref.example/");
    assert_eq!(l[0].agent, "test-agent/1 \\x22q\\x22");
    assert_eq!(l[0].extra["upstream"], upstream);
    assert!(l[0].extra["upstream_ms"].parse::<f64>().unwrap() >= 0.0);
    assert_eq!(l[1].request, "HEAD /app/h HTTP/1.1");
    assert_eq!((l[1].status, l[1].bytes), (200, 0));
    assert_eq!(l[2].request, "GET /nothing HTTP/1.1");
    assert_eq!(
        (l[2].status, l[2].bytes),
        (404, "404 Not Found\n".len() as u64)
    );
    assert_eq!(
        (l[2].referer.as_str(), l[2].extra["upstream"].as_str()),
        ("-", "-")
    );
    assert_eq!((l[3].status, l[3].extra["upstream"].as_str()), (502, "-"));
    assert_eq!(l[3].extra["upstream_ms"], "-");
    assert_eq!((l[4].request.as_str(), l[4].status), ("-", 400));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn json_lines_with_chosen_fields() {
    let origin = Origin::echo();
    let toml = format!(
        "[log]\naccess = \"stdout\"\naccess_format = \"json\"\n\
access_fields = [\"method\", \"path\", \"status\", \"bytes\", \"upstream\", \"consumer\", \"time\"]\n\
[[listener]]\nlisten = \"127.0.0.1:0\"\n\
[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"{}\"\n\
[[auth]]\nname = \"keys\"\nkind = \"api_key\"\nheader = \"x-api-key\"\nkeys = {{ \"k1\" = \"alice\" }}\n\
[[route]]\npath_prefix = \"/keyed\"\nupstream = \"app\"\nauth = \"keys\"\n\
[[route]]\npath_prefix = \"/\"\nupstream = \"app\"\n",
        origin.addr
    );
    let proxy = Proxy::start(&toml);
    const N: usize = 40;
    for i in 0..N {
        let mut c = Client::connect(proxy.addr());
        let body = "b".repeat(i);
        let r = c.request(&format!(
            "POST /j/{i} HTTP/1.1\r\nHost: h\r\nContent-Length: {i}\r\n\r\n{body}"
        ));
        assert_eq!(r.status, 200);
    }
    let mut c = Client::connect(proxy.addr());
    assert_eq!(
        c.request("GET /keyed HTTP/1.1\r\nHost: h\r\nx-api-key: k1\r\n\r\n")
            .status,
        200
    );
    assert_eq!(
        c.request("GET /keyed HTTP/1.1\r\nHost: h\r\n\r\n").status,
        401
    );

    let got = lines(N + 2, || proxy.stdout());
    let v: Vec<serde_json::Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &v {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 7, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let upstream = origin.addr.to_string();
    for i in 0..N {
        let path = format!("/j/{i}");
        let e = v
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no line for {path}"));
        assert_eq!(e["method"], "POST");
        assert_eq!(e["status"], 200);
        assert_eq!(e["bytes"], i as u64, "echoed body size");
        assert_eq!(e["upstream"], upstream.as_str());
        assert_eq!(e["consumer"], serde_json::Value::Null);
    }
    let keyed: Vec<_> = v.iter().filter(|e| e["path"] == "/keyed").collect();
    assert_eq!(keyed.len(), 2);
    assert!(keyed
        .iter()
        .any(|e| e["status"] == 200 && e["consumer"] == "alice"));
    assert!(keyed
        .iter()
        .any(|e| e["status"] == 401 && e["upstream"].is_null()));
}
