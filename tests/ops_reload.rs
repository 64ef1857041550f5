//! Hot reload: under a steady load no request fails and the new route is active; pooled
//! upstream connections, health state and rate-limit buckets survive; listeners open and
//! close; a broken file is rejected with its errors and the old config keeps serving; SIGHUP
//! reloads too.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::ops::{admin, admin_addr, admin_get, json, ops_head, ops_head_app, scrape, sum};
use support::*;

/// Workers 2, an admin listener, upstream "app" routed at "/", and `extra` (routes, listeners).
fn config(app: SocketAddr, extra: &str) -> String {
    let head = ops_head_app(2, "", app);
    format!(
        r#"{head}
[[route]]
name = "app"
path_prefix = "/"
upstream = "app"
{extra}
"#
    )
}

fn version_route(k: usize) -> String {
    format!(
        "\n[[route]]\nname = \"v{k}\"\npath_exact = \"/v{k}\"\nrespond = {{ status = 200, body = \"version {k}\" }}\n"
    )
}

/// Clients looping GET / until `stop`: keep-alive connections, a new one every 25 requests.
/// Returns (requests, failures) once stopped.
fn load(
    proxy: SocketAddr,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<(usize, Vec<String>)>> {
    (0..clients)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut done, mut failures) = (0, Vec::new());
                let hard_stop = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < hard_stop {
                    let mut c = Client::connect(proxy);
                    for _ in 0..25 {
                        c.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
                        match c.read_response(false) {
                            Some(r) if r.status == 200 && r.body == b"app" => {}
                            Some(r) => failures.push(format!("{} {}", r.status, r.text())),
                            None => failures.push("connection closed".into()),
                        }
                        done += 1;
                    }
                }
                (done, failures)
            })
        })
        .collect()
}

#[test]
fn reload_under_load_fails_no_request_and_activates_the_new_route() {
    for driver in [Driver::Auto, Driver::Legacy] {
        let origin = Origin::fixed("app", "app");
        let proxy = Proxy::start_with(&config(origin.addr, ""), driver);
        let a = admin_addr(&proxy);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = load(proxy.addr(), 4, stop.clone());
        wait_until(DEADLINE, "traffic flowing", || origin.request_count() > 100);
        let mut extra = String::new();
        for k in 1..=6 {
            extra.push_str(&version_route(k));
            proxy.write_config(&config(origin.addr, &extra));
            if k % 2 == 0 {
                proxy.signal(libc::SIGHUP);
                wait_until(DEADLINE, "SIGHUP reload", || {
                    json(&admin_get(a, "/status", None))["generation"] == k
                });
            } else {
                let r = admin(a, "POST", "/reload", None, "");
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(json(&r)["generation"], k);
            }
            let before = origin.request_count();
            wait_until(DEADLINE, "traffic between reloads", || {
                origin.request_count() > before + 200
            });
            let r = Client::connect(proxy.addr()).get(&format!("/v{k}"));
            assert_eq!(
                r.text(),
                format!("version {k}"),
                "the new route answers at once"
            );
        }
        stop.store(true, Ordering::SeqCst);
        let (mut total, mut failures) = (0, Vec::new());
        for c in clients {
            let (n, f) = c.join().unwrap();
            total += n;
            failures.extend(f);
        }
        assert!(
            failures.is_empty(),
            "{driver:?}: {} of {total} failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(total > 400, "{total}");
        // Pooled upstream connections stayed across the six reloads: 4 clients need at most a
        // few per shard, where dropping the pools would have opened new ones each time.
        assert!(
            origin.connections() <= 8,
            "{driver:?}: {} upstream connections",
            origin.connections()
        );
        let s = scrape(a, None);
        assert_eq!(
            sum(&s, "coregate_config_reloads_total", &[("result", "ok")]),
            6.0
        );
        assert_eq!(
            sum(&s, "coregate_config_generation", &[]),
            12.0,
            "both shards at 6"
        );
        assert_eq!(
            sum(
                &s,
                "coregate_requests_total",
                &[("route", "app"), ("status_class", "2xx")]
            ),
            total as f64,
            "counters of a route that stays are carried over"
        );
    }
}

#[test]
fn a_broken_file_is_rejected_and_the_old_config_keeps_serving() {
    let origin = Origin::fixed("app", "app");
    let good = config(origin.addr, &version_route(1));
    let proxy = Proxy::start(&good);
    let a = admin_addr(&proxy);
    let mut c = Client::connect(proxy.addr());

    proxy.write_config("[[route]\nname = ");
    let r = admin(a, "POST", "/reload", None, "");
    assert_eq!(r.status, 400);
    let body = json(&r);
    assert_eq!(body["status"], "rejected");
    let first = body["errors"][0].as_str().unwrap().to_string();
    assert!(
        first.contains(&proxy.config_path().display().to_string()) && first.contains(":1:"),
        "{first}"
    );

    let bad = good.replace("upstream = \"app\"", "upstream = \"nope\"")
        + "\n[[listener]]\nlisten = \"banana\"\n";
    proxy.write_config(&bad);
    let body = json(&admin(a, "POST", "/reload", None, ""));
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("route[0].upstream") && errors.contains("listener[1].listen"),
        "{errors}"
    );

    assert_eq!(
        c.get("/v1").text(),
        "version 1",
        "the old config still serves, same connection"
    );
    assert_eq!(Client::connect(proxy.addr()).get("/").text(), "app");
    let status = json(&admin_get(a, "/status", None));
    assert_eq!(status["generation"], 0);
    assert_eq!(status["reloads"]["rejected"], 2);
    assert!(status["reloads"]["last_errors"]
        .to_string()
        .contains("route[0].upstream"));
    assert!(proxy.log().contains("reload rejected"));
    // SIGHUP with a broken file: rejected the same way.
    proxy.signal(libc::SIGHUP);
    wait_until(DEADLINE, "third rejection", || {
        json(&admin_get(a, "/status", None))["reloads"]["rejected"] == 3
    });
    assert_eq!(c.get("/v1").status, 200);
    // Fixed: accepted.
    proxy.write_config(&config(origin.addr, &version_route(2)));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    assert_eq!(c.get("/v2").text(), "version 2");
    assert_eq!(
        c.get("/v1").text(),
        "app",
        "v1 is gone: the catch-all route answers"
    );
}

#[test]
fn listeners_open_and_close_on_reload() {
    let origin = Origin::fixed("app", "app");
    let extra = "\n[[listener]]\nname = \"extra\"\nlisten = \"127.0.0.1:0\"\n";
    let proxy = Proxy::start(&config(origin.addr, ""));
    let a = admin_addr(&proxy);
    let public = proxy.addr();
    let mut kept = Client::connect(public);
    assert_eq!(kept.get("/").status, 200);

    proxy.write_config(&config(origin.addr, extra));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    let status = json(&admin_get(a, "/status", None));
    assert_eq!(
        status["listeners"][0]["addr"],
        public.to_string(),
        "public keeps its port"
    );
    assert_eq!(status["listeners"][1]["name"], "extra");
    let extra_addr: SocketAddr = status["listeners"][1]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..4 {
        assert_eq!(Client::connect(extra_addr).get("/").text(), "app");
    }
    assert_eq!(
        kept.get("/").status,
        200,
        "an open connection survives the reload"
    );

    proxy.write_config(&config(origin.addr, ""));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    wait_until(DEADLINE, "the removed listener closes", || {
        TcpStream::connect(extra_addr).is_err()
    });
    assert_eq!(kept.get("/").status, 200);
    assert_eq!(Client::connect(public).get("/").status, 200);
    assert_eq!(
        json(&admin_get(a, "/status", None))["listeners"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn health_state_and_rate_limit_buckets_survive_a_reload() {
    let good = Origin::fixed("good", "good");
    let dead = closed_port();
    let later_dead = closed_port();
    let toml = |servers: &[String], route: &str| {
        let mut s = ops_head(2, "");
        s.push_str("[[upstream]]\nname = \"app\"\n");
        for a in servers {
            s.push_str(&format!("[[upstream.server]]\naddress = \"{a}\"\n"));
        }
        s.push_str(
            "[upstream.health]\ninterval_ms = 50\ntimeout_ms = 500\nunhealthy_threshold = 1\n",
        );
        s.push_str(
            "[[rate_limit]]\nname = \"two\"\nkey = \"route\"\nrate = 2\nperiod_ms = 600000\n",
        );
        s.push_str("[[route]]\nname = \"limited\"\npath_exact = \"/limited\"\nrate_limit = \"two\"\nrespond = { status = 200 }\n");
        s.push_str("[[route]]\nname = \"app\"\npath_prefix = \"/\"\nupstream = \"app\"\n");
        s.push_str(route);
        s
    };
    let two = [good.addr.to_string(), dead.to_string()];
    let proxy = Proxy::start(&toml(&two, ""));
    let a = admin_addr(&proxy);
    let health = |a, i: usize| {
        json(&admin_get(a, "/upstreams", None))["upstreams"][0]["servers"][i]["health"].clone()
    };
    wait_until(DEADLINE, "the dead server is down", || {
        health(a, 1) == "down"
    });
    let mut c = Client::connect(proxy.addr());
    assert_eq!(c.get("/limited").status, 200);
    assert_eq!(c.get("/limited").status, 200);
    assert_eq!(c.get("/limited").status, 429);

    // Reload with one more (dead) server and a new route.
    let three = [
        good.addr.to_string(),
        dead.to_string(),
        later_dead.to_string(),
    ];
    proxy.write_config(&toml(&three, &version_route(1)));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    assert_eq!(
        health(a, 1),
        "down",
        "a server that stays keeps its health at once"
    );
    assert_eq!(health(a, 2), "up", "a new server starts up");
    wait_until(DEADLINE, "the control thread probes the new server", || {
        health(a, 2) == "down"
    });
    for _ in 0..10 {
        assert_eq!(c.get("/x").text(), "good", "down servers get no traffic");
    }
    assert_eq!(c.get("/limited").status, 429, "the policy's bucket is kept");
    assert_eq!(c.get("/v1").status, 200);
}

#[test]
fn a_reload_may_not_change_a_global_rate_limit() {
    let origin = Origin::fixed("app", "app");
    let redis = closed_port();
    let global = format!(
        "\n[[rate_limit]]\nname = \"g\"\nrate = 10\nscope = \"global\"\nredis = \"redis://{redis}\"\n"
    );
    let proxy = Proxy::start(&config(origin.addr, &global));
    let a = admin_addr(&proxy);
    // Another route is fine as long as the global policy stays as it is.
    proxy.write_config(&config(origin.addr, &(global.clone() + &version_route(1))));
    assert_eq!(admin(a, "POST", "/reload", None, "").status, 200);
    let changed = global.replace("rate = 10", "rate = 20");
    proxy.write_config(&config(origin.addr, &changed));
    let r = admin(a, "POST", "/reload", None, "");
    assert_eq!(r.status, 400);
    assert!(
        json(&r)["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("rate_limit[0]: "),
        "{}",
        r.text()
    );
    proxy.write_config(&config(origin.addr, ""));
    assert_eq!(
        admin(a, "POST", "/reload", None, "").status,
        400,
        "removing it is refused too"
    );
    assert_eq!(Client::connect(proxy.addr()).get("/v1").text(), "version 1");
}

#[test]
fn a_discovered_cluster_reloads_under_load_without_failures() {
    let a = Origin::fixed("a", "app");
    let b = Origin::fixed("b", "app");
    let dir = std::env::temp_dir().join(format!("coregate-ops-disc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let servers = dir.join("app.servers");
    std::fs::write(&servers, format!("{}\n{}\n", a.addr, b.addr)).unwrap();
    let toml = |extra: &str| {
        format!(
            "{}[[upstream]]\nname = \"app\"\nservers_file = \"{}\"\n\
             [[route]]\nname = \"app\"\npath_prefix = \"/\"\nupstream = \"app\"\n{extra}",
            ops_head(2, ""),
            servers.display()
        )
    };
    let proxy = Proxy::start(&toml(""));
    let a_admin = admin_addr(&proxy);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(proxy.addr(), 3, stop.clone());
    wait_until(DEADLINE, "traffic", || {
        a.request_count() + b.request_count() > 100
    });
    for k in 1..=3 {
        proxy.write_config(&toml(&version_route(k)));
        assert_eq!(admin(a_admin, "POST", "/reload", None, "").status, 200);
        let before = a.request_count() + b.request_count();
        wait_until(DEADLINE, "traffic after the reload", || {
            a.request_count() + b.request_count() > before + 100
        });
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.join().unwrap().1);
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert!(a.request_count() > 0 && b.request_count() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
