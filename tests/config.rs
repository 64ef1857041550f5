//! Config loading: every shipped file is valid, every kind of mistake is an error naming the key
//! path and the problem, and `coregate check` reports it with exit code 1.

use std::path::Path;
use std::process::Command;

use coregate::config::{self, defaults as d, LoadError};

fn errors(toml: &str) -> Vec<String> {
    match config::from_toml(toml, Path::new("test.toml")) {
        Ok(_) => Vec::new(),
        Err(LoadError { errors, .. }) => errors
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.problem))
            .collect(),
    }
}

/// Assert that `toml` fails with an error on `key` whose text contains `needle`.
fn fails(toml: &str, key: &str, needle: &str) {
    let errs = errors(toml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{key}: ")) && e.contains(needle)),
        "expected `{key}: …{needle}…`, got {errs:?}\nfor:\n{toml}"
    );
}

const UP: &str =
    "[[upstream]]\nname = \"app\"\n[[upstream.server]]\naddress = \"127.0.0.1:9000\"\n";

#[test]
fn shipped_configs_are_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = config::load(&path) {
                panic!("{e}");
            }
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn defaults_apply() {
    let c = config::from_toml("", Path::new("empty.toml")).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].addr.to_string(), d::LISTEN);
    assert_eq!(c.limits.header_bytes_max, 32768);
    assert_eq!(c.limits.header_count_max, 100);
    assert_eq!(c.limits.uri_bytes_max, 8192);
    assert_eq!(c.limits.body_bytes_max, 10485760);
    assert_eq!(c.timeouts.client_header.as_millis(), 10000);
    assert_eq!(c.timeouts.upstream_connect.as_millis(), 2000);
    assert_eq!(c.server.drain_timeout.as_millis(), 10000);
}

#[test]
fn syntax_and_unknown_keys() {
    fails("[server\n", "(file)", "");
    fails("[server]\nworkerz = 2\n", "server.workerz", "unknown field");
    // An empty quoted key is named as written (found by the config fuzzer: the key was empty).
    fails("\"\" = \"\"\n", "\"\"", "unknown field");
    fails("[server]\n\"\" = 2\n", "server.\"\"", "unknown field");
    fails(
        &format!("{UP}[[upstream.server]]\nadress = \"x:1\"\n"),
        "upstream[0].server[1].adress",
        "unknown field",
    );
    fails(
        "[limits]\nheader_bytes_max = \"big\"\n",
        "limits.header_bytes_max",
        "invalid type",
    );
    fails(
        "[server]\ndriver = \"kqueue\"\n",
        "server.driver",
        "unknown variant",
    );
    fails("[server]\nworkers = \"many\"\n", "server.workers", "auto");
    fails(
        &format!("{UP}[[route]]\nupstream = \"app\"\nhots = \"x\"\n"),
        "route[0].hots",
        "unknown field",
    );
    fails(
        "[[upstream]]\nname = \"a\"\nbalance = \"random\"\n",
        "upstream[0].balance",
        "unknown variant",
    );
}

#[test]
fn line_numbers_are_reported() {
    let err = config::from_toml("[server]\n\nworkerz = 1\n", Path::new("f.toml")).unwrap_err();
    assert_eq!(err.errors[0].line, Some(3));
    assert!(
        err.to_string().starts_with("f.toml:3: server.workerz: "),
        "{err}"
    );
}

#[test]
fn bad_values() {
    fails("[server]\nworkers = 0\n", "server.workers", "at least 1");
    fails("[server]\nworkers = []\n", "server.workers", "empty");
    fails("[server]\nworkers = [1, 1]\n", "server.workers", "twice");
    fails("[log]\nlevel = \"loud\"\n", "log.level", "not one of");
    fails(
        "[limits]\nheader_bytes_max = 10\n",
        "limits.header_bytes_max",
        "outside",
    );
    fails(
        "[limits]\nheader_count_max = 0\n",
        "limits.header_count_max",
        "outside",
    );
    fails(
        "[limits]\nheader_count_max = 5000\n",
        "limits.header_count_max",
        "outside",
    );
    fails(
        "[limits]\nuri_bytes_max = 99999\n",
        "limits.uri_bytes_max",
        "outside",
    );
    fails(
        "[limits]\nconnections_per_shard_max = 0\n",
        "limits.connections_per_shard_max",
        "outside",
    );
    fails(
        "[limits]\nidle_release_connections = 20000000\n",
        "limits.idle_release_connections",
        "outside",
    );
    fails(
        "[timeouts]\nclient_header_ms = 0\n",
        "timeouts.client_header_ms",
        "outside",
    );
    fails(
        "[timeouts]\nupstream_connect_ms = 999999999999\n",
        "timeouts.upstream_connect_ms",
        "outside",
    );
    fails(
        "[timeouts]\nupstream_response_ms = -1\n",
        "timeouts.upstream_response_ms",
        "invalid value",
    );
}

#[test]
fn listeners() {
    fails(
        "[[listener]]\nlisten = \"localhost\"\n",
        "listener[0].listen",
        "not an IP:port",
    );
    fails(
        "[[listener]]\nlisten = \"1.2.3.4:99999\"\n",
        "listener[0].listen",
        "not an IP:port",
    );
    fails(
        "[[listener]]\nname = \"x\"\n",
        "listener[0]",
        "missing field `listen`",
    );
    fails(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\n[[listener]]\nlisten = \"127.0.0.1:80\"\n",
        "listener[1].listen",
        "twice",
    );
    fails(
        "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:80\"\n[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:81\"\n",
        "listener[1].name",
        "twice",
    );
}

#[test]
fn upstreams() {
    fails(
        "[[upstream]]\nname = \"a\"\n",
        "upstream[0].server",
        "at least one",
    );
    fails(&format!("{UP}{UP}"), "upstream[1].name", "defined twice");
    fails(
        "[[upstream]]\nname = \"\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\n",
        "upstream[0].name",
        "empty",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"nope\"\n",
        "upstream[0].server[0].address",
        "not host:port",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"127.0.0.1:0\"\n",
        "upstream[0].server[0].address",
        "port 0",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"no-such-host.invalid:80\"\n",
        "upstream[0].server[0].address",
        "cannot resolve",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\nweight = 0\n",
        "upstream[0].server[0].weight",
        "outside",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\n",
        "upstream[0].server[0]",
        "missing field `address`",
    );
}

#[test]
fn routes() {
    fails(
        "[[route]]\nupstream = \"ghost\"\n",
        "route[0].upstream",
        "not defined",
    );
    fails(
        &format!("{UP}[[route]]\npath_prefix = \"/\"\n"),
        "route[0]",
        "exactly one",
    );
    fails(
        &format!("{UP}[[route]]\nupstream = \"app\"\nrespond = {{ status = 200 }}\n"),
        "route[0]",
        "exactly one",
    );
    fails(
        &format!("{UP}[[route]]\nupstream = \"app\"\npath_prefix = \"api\"\n"),
        "route[0].path_prefix",
        "start with /",
    );
    fails(
        &format!("{UP}[[route]]\nupstream = \"app\"\nhost = \"a b\"\n"),
        "route[0].host",
        "not a host",
    );
    fails(
        "[[route]]\nrespond = { status = 99 }\n",
        "route[0].respond.status",
        "outside",
    );
    fails(
        "[[route]]\nrespond = { status = 200, content_type = \"a\\nb\" }\n",
        "route[0].respond.content_type",
        "printable",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = errors("[limits]\nheader_count_max = 0\n[timeouts]\nclient_idle_ms = 0\n[[route]]\nupstream = \"x\"\n");
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn check_command_exit_codes_and_messages() {
    let bin = env!("CARGO_BIN_EXE_coregate");
    let dir = std::env::temp_dir().join(format!("coregate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[route]]\nupstream = \"userz\"\n").unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml: route[0].upstream: names upstream \"userz\""),
        "{stderr}"
    );

    let good = Path::new("config/coregate.toml");
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let missing = dir.join("missing.toml");
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `[[upstream]]` with one server and `keys` (then `tables`).
fn lb(keys: &str, tables: &str) -> String {
    format!(
        "[[upstream]]\nname = \"a\"\n{keys}\n[[upstream.server]]\naddress = \"127.0.0.1:9000\"\n{tables}\n"
    )
}

#[test]
fn load_balancing_keys() {
    fails(
        &lb("balance = \"fastest\"", ""),
        "upstream[0].balance",
        "unknown variant",
    );
    fails(
        &lb("hash_key = \"query:x\"", ""),
        "upstream[0].hash_key",
        "not one of",
    );
    fails(
        &lb("hash_key = \"header:\"", ""),
        "upstream[0].hash_key",
        "not one of",
    );
    fails(
        &lb("retries = 11", ""),
        "upstream[0].retries",
        "outside 0..=10",
    );
    fails(
        &lb("retry_budget_percent = 101", ""),
        "upstream[0].retry_budget_percent",
        "outside 0..=100",
    );
    fails(
        &lb("sticky_cookie = \"a;b\"", ""),
        "upstream[0].sticky_cookie",
        "not a cookie name",
    );
    fails(
        &lb("ewma_decay_ms = 0", ""),
        "upstream[0].ewma_decay_ms",
        "outside",
    );
    fails(
        &lb("slow_start_ms = -1", ""),
        "upstream[0].slow_start_ms",
        "invalid value",
    );
    fails(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\n\
[[upstream.server]]\naddress = \"127.0.0.1:1\"\n",
        "upstream[0].server[1].address",
        "listed twice",
    );
    fails(
        "[[upstream]]\nname = \"a\"\nbalance = \"hash\"\n[[upstream.server]]\n\
address = \"127.0.0.1:1\"\nweight = 5000\n",
        "upstream[0].server",
        "lower the weights",
    );
    fails(
        "[[route]]\nrespond = { status = 200 }\nretry_non_idempotent = \"yes\"\n",
        "route[0].retry_non_idempotent",
        "invalid type",
    );
}

#[test]
fn health_and_outlier_keys() {
    let health = |k: &str| lb("", &format!("[upstream.health]\n{k}\n"));
    fails(
        &health("healthy_threshold = 0"),
        "upstream[0].health.healthy_threshold",
        "outside 1..=1000",
    );
    fails(
        &health("unhealthy_threshold = 0"),
        "upstream[0].health.unhealthy_threshold",
        "outside 1..=1000",
    );
    fails(
        &health("path = \"healthz\""),
        "upstream[0].health.path",
        "start with /",
    );
    fails(
        &health("interval_ms = 5"),
        "upstream[0].health.interval_ms",
        "outside 10..=",
    );
    fails(
        &health("timeout_ms = 0"),
        "upstream[0].health.timeout_ms",
        "outside 1..=",
    );
    fails(
        &health("expect_status = \"2xx\""),
        "upstream[0].health.expect_status",
        "not a status or a range",
    );
    fails(
        &health("expect_status = \"500-200\""),
        "upstream[0].health.expect_status",
        "not a status or a range",
    );
    fails(
        &health("pathz = \"/\""),
        "upstream[0].health.pathz",
        "unknown field",
    );
    let outlier = |k: &str| lb("", &format!("[upstream.outlier]\n{k}\n"));
    fails(
        &outlier("consecutive_failures = 0"),
        "upstream[0].outlier.consecutive_failures",
        "outside 1..=1000",
    );
    fails(
        &outlier("base_ejection_ms = 0"),
        "upstream[0].outlier.base_ejection_ms",
        "outside 1..=",
    );
    fails(
        &outlier("base_ejection_ms = 5000\nmax_ejection_ms = 1000"),
        "upstream[0].outlier.max_ejection_ms",
        "outside base_ejection_ms",
    );
}

#[test]
fn load_balancing_defaults_apply() {
    let c = config::from_toml(
        &lb("", "[upstream.health]\n[upstream.outlier]\n"),
        Path::new("t.toml"),
    )
    .unwrap();
    let u = &c.upstreams[0];
    assert_eq!(u.balance, config::Balance::RoundRobin);
    assert_eq!(u.hash_key, config::HashKey::ClientIp);
    assert_eq!(u.retries, d::RETRIES);
    assert_eq!((u.retry_budget.percent, u.retry_budget.min_per_s), (20, 10));
    assert_eq!(u.sticky_cookie, None);
    assert_eq!(u.slow_start.as_millis(), 0);
    assert!(!u.fail_open);
    assert_eq!(u.ewma_decay.as_millis(), 10_000);
    let h = u.health.as_ref().unwrap();
    assert_eq!(h.path, "/healthz");
    assert_eq!(
        (h.interval.as_millis(), h.timeout.as_millis()),
        (2000, 1000)
    );
    assert_eq!(h.expect_status, 200..=399);
    assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
    let o = u.outlier.unwrap();
    assert_eq!(o.consecutive_failures, 5);
    assert_eq!(o.base_ejection.as_millis(), 30_000);
    assert_eq!(o.max_ejection.as_millis(), 300_000);
    // An IP is never re-resolved; a hostname is, every 30 s by default.
    assert_eq!(c.pools[0].resolve_interval, None);
    let named = config::from_toml(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"localhost:9000\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(
        named.pools[0].resolve_interval.map(|d| d.as_millis()),
        Some(30_000)
    );
}

#[test]
fn check_command_names_load_balancing_key_paths() {
    let bin = env!("CARGO_BIN_EXE_coregate");
    let dir = std::env::temp_dir().join(format!("coregate-check-lb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\nweight = 0\n\
[upstream.health]\nunhealthy_threshold = 0\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml: upstream[0].server[0].weight: 0 is outside"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.toml: upstream[0].health.unhealthy_threshold: 0 is outside"),
        "{stderr}"
    );
    std::fs::write(&bad, "[[upstream]]\nname = \"a\"\nbalance = \"random\"\n").unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream[0].balance: unknown variant `random`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const RESP: &str = "respond = { status = 200 }\n";

#[test]
fn route_match_and_rewrite_errors() {
    let r = |body: &str| format!("{UP}[[route]]\n{body}\n");
    fails(
        &r("path = \"/a/{id}\"\npath_prefix = \"/a\"\nupstream = \"app\""),
        "route[0].path",
        "at most one",
    );
    fails(
        &r("path_exact = \"a\"\nupstream = \"app\""),
        "route[0].path_exact",
        "start with /",
    );
    fails(
        &format!(
            "{}[[route]]\npath = \"/u/{{name}}\"\n{RESP}",
            r("path = \"/u/{id}\"\nupstream = \"app\"")
        ),
        "route[1].path",
        "pattern refused",
    );
    fails(
        &r("path = \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\"\nupstream = \"app\""),
        "route[0].path",
        "more than 8",
    );
    fails(
        &r("methods = []\nupstream = \"app\""),
        "route[0].methods",
        "empty",
    );
    fails(
        &r("methods = [\"BREW\"]\nupstream = \"app\""),
        "route[0].methods",
        "not one of",
    );
    fails(
        &r("headers = { \"bad name\" = \"x\" }\nupstream = \"app\""),
        "route[0].headers",
        "not a field name",
    );
    fails(
        &r("upstream = \"app\"\naggregate = []"),
        "route[0]",
        "exactly one",
    );
    fails(
        &r("upstream = \"app\"\nstrip_prefix = \"/a\"\nrewrite = \"/b\""),
        "route[0].rewrite",
        "at most one",
    );
    fails(
        &r(&format!("strip_prefix = \"/a\"\n{RESP}")),
        "route[0].strip_prefix",
        "`upstream` routes only",
    );
    fails(
        &r("upstream = \"app\"\nstrip_prefix = \"a\""),
        "route[0].strip_prefix",
        "start with /",
    );
    fails(
        &r("path_exact = \"/a\"\nupstream = \"app\"\nreplace_prefix = \"/b\""),
        "route[0].replace_prefix",
        "path_prefix",
    );
    fails(
        &r("path = \"/u/{id}\"\nupstream = \"app\"\nrewrite = \"/x/{nope}\""),
        "route[0].rewrite",
        "not a parameter",
    );
    fails(
        &r("upstream = \"app\"\nauth = \"ghost\""),
        "route[0].auth",
        "not defined",
    );
    fails(
        &r("upstream = \"app\"\nrate_limit = \"ghost\""),
        "route[0].rate_limit",
        "not defined",
    );
    fails(
        &r("upstream = \"app\"\ncors = \"ghost\""),
        "route[0].cors",
        "not defined",
    );
}

#[test]
fn route_aggregate_and_transform_errors() {
    let r = |body: &str| format!("{UP}[[route]]\npath = \"/d/{{id}}\"\n{body}\n");
    fails(&r("aggregate = []"), "route[0].aggregate", "parts");
    fails(&r("aggregate = [{ key = \"a\", upstream = \"app\", path = \"/a\" }, { key = \"a\", upstream = \"app\", path = \"/b\" }]"), "route[0].aggregate[1].key", "unique");
    fails(
        &r("aggregate = [{ key = \"a\", upstream = \"ghost\", path = \"/a\" }]"),
        "route[0].aggregate[0].upstream",
        "not defined",
    );
    fails(
        &r("aggregate = [{ key = \"a\", upstream = \"app\", path = \"/a/{nope}\" }]"),
        "route[0].aggregate[0].path",
        "not a parameter",
    );
    fails(
        &r("aggregate = [{ key = \"a\", upstream = \"app\", path = \"/a\", timeout_ms = 0 }]"),
        "route[0].aggregate[0].timeout_ms",
        "outside",
    );
    fails(&r("aggregate = [{ key = \"a\", upstream = \"app\", path = \"/a\" }]\naggregate_on_error = \"maybe\""), "route[0].aggregate_on_error", "not \"partial\"");
    fails(
        &r("upstream = \"app\"\naggregate_on_error = \"fail\""),
        "route[0].aggregate_on_error",
        "only for",
    );
    fails(
        &r("upstream = \"app\"\nrequest_headers = { set = { \"a b\" = \"x\" } }"),
        "route[0].request_headers.set",
        "not a field name",
    );
    fails(
        &r("upstream = \"app\"\nrequest_headers = { set = { \"x-a\" = \"${nope}\" } }"),
        "route[0].request_headers.set.x-a",
        "unknown variable",
    );
    fails(
        &r("upstream = \"app\"\nresponse_headers = { add = { \"x-a\" = \"${claim.sub}\" } }"),
        "route[0].response_headers.add.x-a",
        "needs a JWT",
    );
    fails(
        &r("upstream = \"app\"\nrequest_headers = { remove = [\"\"] }"),
        "route[0].request_headers.remove",
        "not a field name",
    );
    fails(
        &format!(
            "[[rate_limit]]\nname = \"c\"\nkey = \"consumer\"\nrate = 1\n{}",
            r("upstream = \"app\"\nrate_limit = \"c\"")
        ),
        "route[0].rate_limit",
        "needs an `auth`",
    );
}

#[test]
fn auth_errors() {
    let jwt = |body: &str| format!("[[auth]]\nname = \"j\"\nkind = \"jwt\"\n{body}\n");
    assert!(errors(&jwt("algorithms = [\"HS256\"]\nsecret = \"s\"")).is_empty());
    fails(
        "[[auth]]\nname = \"\"\nkind = \"jwt\"\n",
        "auth[0].name",
        "empty",
    );
    fails(
        "[[auth]]\nname = \"a\"\nkind = \"saml\"\n",
        "auth[0].kind",
        "not \"jwt\"",
    );
    fails(&jwt("secret = \"s\""), "auth[0].algorithms", "at least one");
    fails(
        &jwt("algorithms = [\"HS999\"]\nsecret = \"s\""),
        "auth[0].algorithms",
        "not one of",
    );
    fails(
        &jwt("algorithms = [\"HS256\"]"),
        "auth[0]",
        "exactly one of",
    );
    fails(
        &jwt("algorithms = [\"HS256\"]\nsecret = \"s\"\njwks_file = \"k.json\""),
        "auth[0]",
        "exactly one of",
    );
    fails(
        &jwt("algorithms = [\"HS256\"]\nsecret = \"\""),
        "auth[0].secret",
        "empty",
    );
    fails(
        &jwt("algorithms = [\"RS256\"]\nsecret = \"s\""),
        "auth[0].secret",
        "none of the listed",
    );
    fails(
        &jwt("algorithms = [\"RS256\"]\npublic_key = \"not pem\""),
        "auth[0].public_key",
        "not a PEM",
    );
    fails(
        &jwt("algorithms = [\"RS256\"]\npublic_key_file = \"no/such.pem\""),
        "auth[0].public_key_file",
        "cannot read",
    );
    fails(
        &jwt("algorithms = [\"RS256\"]\njwks_file = \"no/such.json\""),
        "auth[0].jwks_file",
        "cannot read",
    );
    fails(
        &jwt("algorithms = [\"HS256\"]\nsecret = \"s\"\nheader = \"x-api-key\""),
        "auth[0].header",
        "kind = \"api_key\"",
    );
    fails(
        &jwt("algorithms = [\"HS256\"]\nsecret = \"s\"\nclaims_to_headers = { sub = \"a b\" }"),
        "auth[0].claims_to_headers",
        "not a field name",
    );
    let key = |body: &str| format!("[[auth]]\nname = \"k\"\nkind = \"api_key\"\n{body}\n");
    fails(
        &key("keys = { a = \"b\" }"),
        "auth[0].header",
        "exactly one of",
    );
    fails(
        &key("header = \"x\"\nquery = \"y\"\nkeys = { a = \"b\" }"),
        "auth[0].header",
        "exactly one of",
    );
    fails(
        &key("header = \"a b\"\nkeys = { a = \"b\" }"),
        "auth[0].header",
        "not a field name",
    );
    fails(
        &key("query = \"a&b\"\nkeys = { a = \"b\" }"),
        "auth[0].query",
        "not a parameter",
    );
    fails(&key("header = \"x\""), "auth[0].keys", "at least one");
    fails(
        &key("header = \"x\"\nkeys = { a = \"\" }"),
        "auth[0].keys",
        "printable",
    );
    fails(
        &key("header = \"x\"\nkeys = { a = \"b\" }\nsecret = \"s\""),
        "auth[0].secret",
        "kind = \"jwt\"",
    );
    fails(
        &format!(
            "{}{}",
            key("header = \"x\"\nkeys = { a = \"b\" }"),
            key("header = \"x\"\nkeys = { a = \"b\" }")
        ),
        "auth[1].name",
        "twice",
    );
}

#[test]
fn jwks_files_resolve_against_the_config_and_must_hold_usable_keys() {
    let dir = std::env::temp_dir().join(format!("coregate-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), "{\"nope\": 1}").unwrap();
    std::fs::write(
        dir.join("oct.json"),
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\", \"kid\": \"a\"}]}",
    )
    .unwrap();
    let load = |file: &str, algs: &str| {
        let toml = format!("[[auth]]\nname = \"j\"\nkind = \"jwt\"\nalgorithms = [{algs}]\njwks_file = \"{file}\"\n");
        config::from_toml(&toml, &dir.join("c.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(load("bad.json", "\"RS256\"")
        .unwrap_err()
        .contains("auth[0].jwks_file: not a JWK set"));
    assert!(load("oct.json", "\"RS256\"")
        .unwrap_err()
        .contains("no key usable"));
    assert_eq!(load("oct.json", "\"HS256\""), Ok(()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rate_limit_and_cors_errors() {
    let rl = |body: &str| format!("[[rate_limit]]\nname = \"r\"\n{body}\n");
    fails(
        &rl("rate = 1\nscope = \"global\""),
        "rate_limit[0].redis",
        "needs a Redis URL",
    );
    fails(
        &rl("rate = 1\nscope = \"cluster\""),
        "rate_limit[0].scope",
        "is not \"node\"",
    );
    fails(
        &rl("rate = 1\nredis = \"redis://127.0.0.1:6379\""),
        "rate_limit[0].redis",
        "only for scope = \"global\"",
    );
    fails(
        &rl("rate = 1\nkey = \"cookie:x\""),
        "rate_limit[0].key",
        "not client_ip",
    );
    fails(
        &rl("rate = 1\nperiod_ms = 0"),
        "rate_limit[0].period_ms",
        "outside",
    );
    fails(&rl("rate = 0"), "rate_limit[0].rate", "outside");
    fails(&rl("rate = 1\nburst = 0"), "rate_limit[0].burst", "outside");
    fails(
        &rl("rate = 1\nkeys_max = 1"),
        "rate_limit[0].keys_max",
        "outside",
    );
    fails(
        &format!("{}{}", rl("rate = 1"), rl("rate = 2")),
        "rate_limit[1].name",
        "twice",
    );
    fails(&rl(""), "rate_limit[0]", "missing field `rate`");
    let cors = |body: &str| format!("[[cors]]\nname = \"c\"\n{body}\n");
    fails(
        &cors("allow_origins = []"),
        "cors[0].allow_origins",
        "at least one",
    );
    fails(
        &cors("allow_origins = [\"app.example.com\"]"),
        "cors[0].allow_origins",
        "not an origin",
    );
    fails(
        &cors("allow_origins = [\"*\"]\nallow_methods = [\"FETCH\"]"),
        "cors[0].allow_methods",
        "not a method",
    );
    fails(
        &cors("allow_origins = [\"*\"]\nallow_headers = [\"a b\"]"),
        "cors[0].allow_headers",
        "not a field name",
    );
    fails(
        &format!(
            "{}{}",
            cors("allow_origins = [\"*\"]"),
            cors("allow_origins = [\"*\"]")
        ),
        "cors[1].name",
        "twice",
    );
}

#[test]
fn global_rate_limit_errors() {
    let g = |body: &str| {
        format!("[[rate_limit]]\nname = \"g\"\nrate = 1000\nscope = \"global\"\n{body}\n")
    };
    let url = "redis = \"redis://127.0.0.1:6379\"";
    assert_eq!(errors(&g(url)), Vec::<String>::new());
    fails(
        &g("redis = \"127.0.0.1:6379\""),
        "rate_limit[0].redis",
        "not a redis://",
    );
    fails(
        &g("redis = \"rediss://127.0.0.1\""),
        "rate_limit[0].redis",
        "TLS",
    );
    fails(
        &g("redis = \"redis://127.0.0.1/x\""),
        "rate_limit[0].redis",
        "not a number",
    );
    fails(
        &g("redis = \"redis://no-such-host.invalid:6379\""),
        "rate_limit[0].redis",
        "cannot resolve",
    );
    fails(
        &g(&format!("{url}\nredis_timeout_ms = 0")),
        "rate_limit[0].redis_timeout_ms",
        "outside",
    );
    fails(
        &g(&format!("{url}\nredis_fallback = \"maybe\"")),
        "rate_limit[0].redis_fallback",
        "is not \"local\"",
    );
    fails(
        &g(&format!("{url}\nlease_tokens = 1001")),
        "rate_limit[0].lease_tokens",
        "at most the burst",
    );
    fails(
        &g(&format!("{url}\nlease_tokens = 0")),
        "rate_limit[0].lease_tokens",
        "outside",
    );
    for key in [
        "redis_timeout_ms = 5",
        "redis_fallback = \"open\"",
        "lease_tokens = 3",
    ] {
        let k = key.split(' ').next().unwrap();
        fails(
            &format!("[[rate_limit]]\nname = \"n\"\nrate = 1\n{key}\n"),
            &format!("rate_limit[0].{k}"),
            "only for scope",
        );
    }
}

#[test]
fn global_rate_limit_defaults_apply() {
    use coregate::gateway::rate_limit::{Fallback, Scope};
    let c = config::from_toml(
        "[[rate_limit]]\nname = \"g\"\nrate = 5000\nscope = \"global\"\n\
         redis = \"redis://:pw@127.0.0.1:7000/3\"\n",
        Path::new("g.toml"),
    )
    .unwrap();
    let r = &c.gateway.rate_limits[0];
    assert_eq!(r.scope, Scope::Global);
    let g = r.global.as_ref().unwrap();
    assert_eq!(g.timeout.as_millis() as u64, d::REDIS_TIMEOUT_MS);
    assert_eq!(d::REDIS_TIMEOUT_MS, 100);
    assert_eq!(g.fallback, Fallback::Local);
    assert_eq!(g.lease_tokens, 50, "1% of the burst");
    assert_eq!(d::lease_tokens(50), 1);
    assert_eq!(d::lease_tokens(1_000_000), 100);
    assert_eq!((g.target.addr.port(), g.target.db), (7000, 3));
    assert_eq!(g.target.password.as_deref(), Some("pw"));
}

#[test]
fn discovery_errors() {
    let dir = std::env::temp_dir().join(format!("coregate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.servers");
    std::fs::write(&bad, "127.0.0.1:9001\n127.0.0.1:9002 0\n").unwrap();
    let up = |keys: &str| format!("[[upstream]]\nname = \"app\"\n{keys}\n");
    fails(
        &up("servers_file = \"/no/such/file.servers\""),
        "upstream[0].servers_file",
        "cannot read",
    );
    fails(
        &up(&format!("servers_file = \"{}\"", bad.display())),
        "upstream[0].servers_file",
        "line 2: weight",
    );
    fails(
        &up("dns = \"svc.test\""),
        "upstream[0].dns",
        "not host:port",
    );
    fails(
        &up("dns = \"bad name:80\""),
        "upstream[0].dns",
        "not host:port",
    );
    fails(
        &up("dns_srv = \"a..b\""),
        "upstream[0].dns_srv",
        "not a DNS name",
    );
    fails(
        &up("dns = \"svc.test:80\"\ndns_srv = \"_http._tcp.svc.test\""),
        "upstream[0].dns_srv",
        "one discovery source",
    );
    fails(
        &up("dns = \"svc.test:80\"\n[[upstream.server]]\naddress = \"127.0.0.1:9\""),
        "upstream[0].dns",
        "not both",
    );
    fails(&up(""), "upstream[0].server", "servers_file, dns, dns_srv");
    fails(
        "[discovery]\nresolver = \"localhost\"",
        "discovery.resolver",
        "not IP:port",
    );
    fails(
        "[discovery]\ndns_timeout_ms = 0",
        "discovery.dns_timeout_ms",
        "outside",
    );
    fails(
        "[discovery]\nfile_poll_ms = 1",
        "discovery.file_poll_ms",
        "outside",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discovery_defaults_apply() {
    let c = config::from_toml(
        "[[upstream]]\nname = \"app\"\ndns = \"svc.test:8080\"\n",
        Path::new("d.toml"),
    )
    .unwrap();
    assert!(c.upstreams[0].servers.is_empty(), "DNS sources start empty");
    assert_eq!(c.discovery.file_poll.as_millis() as u64, d::FILE_POLL_MS);
    assert_eq!(d::FILE_POLL_MS, 1000);
    assert_eq!(
        c.discovery.dns_timeout.as_millis() as u64,
        d::DNS_TIMEOUT_MS
    );
    assert_eq!(d::DNS_TIMEOUT_MS, 1000);
    assert_eq!(c.discovery.resolver.port(), 53);
    assert_eq!(
        c.upstreams[0]
            .resolve_interval
            .map(|d| d.as_millis() as u64),
        Some(d::RESOLVE_INTERVAL_MS)
    );
}

#[test]
fn gateway_defaults_apply() {
    use coregate::gateway::auth::Auth;
    use coregate::gateway::rate_limit::{LimitKey, Scope};
    let c = config::from_toml(
        "[[auth]]\nname = \"j\"\nkind = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"s\"\n\
         [[rate_limit]]\nname = \"r\"\nrate = 7\n",
        Path::new("g.toml"),
    )
    .unwrap();
    let Auth::Jwt(j) = &c.gateway.auths[0] else {
        panic!("not a jwt auth")
    };
    assert_eq!(j.keys[0].validation.leeway, d::JWT_LEEWAY_S);
    assert_eq!(d::JWT_LEEWAY_S, 30);
    assert_eq!(j.consumer_claim, "sub");
    assert!(j.keys[0].validation.required_spec_claims.contains("exp"));
    let r = &c.gateway.rate_limits[0];
    assert_eq!((r.burst, r.period.as_millis()), (7, 1000));
    assert_eq!((r.key.clone(), r.scope), (LimitKey::ClientIp, Scope::Node));
    assert_eq!(r.keys_max, 100_000);
}

// === reverse-proxy keys: hiding, access log, protection, tunnels, upstream TLS ===

#[test]
fn edge_defaults_apply() {
    let c = config::from_toml("", Path::new("e.toml")).unwrap();
    let hidden: Vec<&[u8]> = c
        .server
        .hide_response_headers
        .iter()
        .map(|h| &**h)
        .collect();
    assert_eq!(hidden, vec![&b"server"[..], b"x-powered-by"]);
    assert_eq!(c.server.server_header, None);
    assert_eq!(c.log.access, None);
    assert_eq!(c.log.access_format, coregate::access_log::Format::Combined);
    assert_eq!(c.log.access_fields.len(), d::ACCESS_FIELDS.len());
    assert_eq!(c.limits.connections_per_ip_max, 0);
    assert_eq!(c.limits.body_rate_min, None);
    assert_eq!(d::CLIENT_BODY_RATE_WINDOW_MS, 10_000);
    assert_eq!(c.timeouts.tunnel_idle.as_millis(), 300_000);
    assert_eq!(c.timeouts.client_linger.as_millis(), 10_000);
    assert_eq!(c.timeouts.client_linger_idle.as_millis(), 5_000);
    assert!(c.listeners[0].access.is_empty());
    let c = config::from_toml(
        "[limits]\nclient_body_rate_min_bytes_per_s = 100\n[log]\naccess = \"stdout\"\n",
        Path::new("e.toml"),
    )
    .unwrap();
    let rate = c.limits.body_rate_min.unwrap();
    assert_eq!((rate.bytes_per_s, rate.window.as_millis()), (100, 10_000));
    assert_eq!(c.log.access, Some(coregate::access_log::Target::Stdout));
    // 0 turns lingering off (the only timeout that may be 0).
    let c = config::from_toml("[timeouts]\nclient_linger_ms = 0\n", Path::new("e.toml")).unwrap();
    assert!(c.timeouts.client_linger.is_zero());
}

#[test]
fn edge_errors_name_their_keys() {
    fails(
        "[server]\nhide_response_headers = [\"bad name\"]\n",
        "server.hide_response_headers[0]",
        "not a field name",
    );
    fails(
        "[server]\nserver_header = \"a\\u0007b\"\n",
        "server.server_header",
        "printable",
    );
    fails("[log]\naccess = \"\"\n", "log.access", "is empty");
    fails(
        "[log]\naccess = \"/no/such/dir/access.log\"\n",
        "log.access",
        "no such directory",
    );
    fails(
        "[log]\naccess_format = \"xml\"\n",
        "log.access_format",
        "unknown variant",
    );
    fails(
        "[log]\naccess_fields = [\"status\", \"colour\"]\n",
        "log.access_fields[1]",
        "not one of",
    );
    fails(
        "[log]\naccess_fields = [\"status\", \"status\"]\n",
        "log.access_fields[1]",
        "twice",
    );
    fails(
        "[limits]\nclient_body_rate_window_ms = 10\n",
        "limits.client_body_rate_window_ms",
        "outside",
    );
    fails(
        "[limits]\nclient_body_rate_min_bytes_per_s = 10000000000000\n",
        "limits.client_body_rate_min_bytes_per_s",
        "more than",
    );
    fails(
        "[timeouts]\ntunnel_idle_ms = 0\n",
        "timeouts.tunnel_idle_ms",
        "outside",
    );
    fails(
        "[timeouts]\nclient_linger_idle_ms = 0\n",
        "timeouts.client_linger_idle_ms",
        "0 ms is outside 1..=86400000 ms",
    );
    fails(
        "[timeouts]\nclient_linger_ms = 86400001\n",
        "timeouts.client_linger_ms",
        "outside 0..=86400000 ms",
    );
    fails(
        "[timeouts]\nclient_linger_ms = -1\n",
        "timeouts.client_linger_ms",
        "invalid value",
    );
}

#[test]
fn cidr_errors_name_their_keys() {
    let listener = |k: &str| format!("[[listener]]\nlisten = \"127.0.0.1:0\"\n{k}\n");
    fails(
        &listener("allow = [\"10.0.0.0/33\"]"),
        "listener[0].allow",
        "not an IP address or CIDR",
    );
    fails(
        &listener("deny = [\"10.0.0.1/8\"]"),
        "listener[0].deny",
        "host bits",
    );
    let route = |k: &str| format!("{UP}[[route]]\nupstream = \"app\"\n{k}\n");
    fails(
        &route("allow = [\"example.com\"]"),
        "route[0].allow",
        "not an IP",
    );
    fails(&route("deny = [\"::1/129\"]"), "route[0].deny", "not an IP");
    assert!(errors(&route(
        "allow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.0.0.66\"]"
    ))
    .is_empty());
}

#[test]
fn upstream_tls_errors_name_their_keys() {
    let up = |tls: &str| {
        format!("[[upstream]]\nname = \"s\"\n[[upstream.server]]\naddress = \"127.0.0.1:9443\"\n[upstream.tls]\n{tls}\n")
    };
    fails(
        &up("ca = \"missing-ca.pem\""),
        "upstream[0].tls.ca",
        "cannot read",
    );
    fails(
        &up("ca = \"Cargo.toml\""),
        "upstream[0].tls.ca",
        "no certificate",
    );
    fails(
        &up("server_name = \"bad name!\""),
        "upstream[0].tls.server_name",
        "not a DNS name",
    );
    fails(&up("sni = \"x\""), "upstream[0].tls.sni", "unknown field");
    assert!(errors(&up(
        "ca = \"config/certs/ca.pem\"\nserver_name = \"localhost\""
    ))
    .is_empty());
    assert!(errors(&up("verify = false")).is_empty());
}

#[test]
fn named_files_must_be_regular_and_bounded() {
    // /dev/zero never ends and a FIFO would block: both are refused, quickly, by name.
    let toml = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"/dev/zero\"\nkey = \"/dev/zero\"\n";
    let t = std::time::Instant::now();
    fails(toml, "listener[0].tls", "not a regular file");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    let err = config::load(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn admin() {
    assert!(config::from_toml("", Path::new("t.toml"))
        .unwrap()
        .admin
        .is_none());
    let c = config::from_toml(
        "[admin]\nlisten = \"127.0.0.1:9901\"\ntoken = \"a-B_c.9~+/=\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let a = c.admin.unwrap();
    assert_eq!(a.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(a.token.as_deref(), Some("a-B_c.9~+/="));
    fails(
        "[admin]\nlisten = \"localhost\"\n",
        "admin.listen",
        "is not an IP:port",
    );
    fails(
        "[admin]\ntoken = \"x\"\n",
        "admin",
        "missing field `listen`",
    );
    fails(
        "[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"\"\n",
        "admin.token",
        "must be non-empty",
    );
    fails(
        "[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"two words\"\n",
        "admin.token",
        "letters, digits",
    );
    fails(
        "[admin]\nlisten = \"127.0.0.1:8080\"\n[[listener]]\nlisten = \"127.0.0.1:8080\"\n",
        "admin.listen",
        "is also a [[listener]] address",
    );
    fails(
        "[admin]\nlisten = \"127.0.0.1:1\"\ntokn = \"x\"\n",
        "admin.tokn",
        "unknown field",
    );
}

#[test]
fn cache_and_compression_defaults_apply() {
    let c = config::from_toml("", Path::new("c.toml")).unwrap();
    assert_eq!(c.cache.bytes_per_shard_max, 64 * 1024 * 1024);
    assert_eq!(c.cache.entry_bytes_max, 1024 * 1024);
    assert_eq!(c.cache.coalesce_timeout.as_millis(), 5000);
    assert_eq!(c.cache.stale.as_secs(), 0);
    assert_eq!(
        (c.compression.gzip_level, c.compression.brotli_level),
        (5, 4)
    );
    assert_eq!(c.compression.min_bytes, 1024);
    use coregate::compress::Coding;
    assert_eq!(c.compression.encodings, vec![Coding::Br, Coding::Gzip]);
    assert_eq!(c.compression.types.len(), d::COMPRESS_TYPES.len());
    let toml = format!(
        "[cache]\nstale_s = 7\n{UP}[[route]]\nupstream = \"app\"\ncache = {{}}\n\
[[route]]\npath_prefix = \"/x\"\nupstream = \"app\"\ncompress = true\n\
cache = {{ ttl_s = 60, stale_s = 30, set_cookie = \"strip\" }}\n"
    );
    let c = config::from_toml(&toml, Path::new("c.toml")).unwrap();
    let find = |name: &str| {
        (0..2)
            .map(|i| c.router.get(i))
            .find(|r| r.name == name)
            .unwrap()
    };
    let plain = find("route0").policy.cache.clone().unwrap();
    assert_eq!((plain.ttl.as_secs(), plain.stale.as_secs()), (0, 7));
    assert!(!plain.strip_set_cookie && !find("route0").policy.compress);
    let x = find("route1").policy.cache.clone().unwrap();
    assert_eq!((x.ttl.as_secs(), x.stale.as_secs()), (60, 30));
    assert!(x.strip_set_cookie && find("route1").policy.compress);
    assert!(x.store_remove.iter().any(|n| &**n == b"set-cookie"));
    assert!(x.store_remove.iter().any(|n| &**n == b"age"));
    assert!(
        x.store_remove.iter().any(|n| &**n == b"server"),
        "hidden fields"
    );
}

#[test]
fn cache_and_compression_errors_name_their_keys() {
    fails(
        "[cache]\nbytes_per_shard_max = 10\n",
        "cache.bytes_per_shard_max",
        "outside",
    );
    fails(
        "[cache]\nbytes_per_shard_max = 100000\nentry_bytes_max = 200000\n",
        "cache.entry_bytes_max",
        "outside",
    );
    fails(
        "[cache]\ncoalesce_timeout_ms = 0\n",
        "cache.coalesce_timeout_ms",
        "outside",
    );
    fails(
        "[cache]\nstale_s = 99999999999\n",
        "cache.stale_s",
        "a year",
    );
    fails("[cache]\nsize = 1\n", "cache.size", "unknown field");
    fails(
        "[compression]\ngzip_level = 0\n",
        "compression.gzip_level",
        "outside",
    );
    fails(
        "[compression]\nbrotli_level = 12\n",
        "compression.brotli_level",
        "outside",
    );
    fails(
        "[compression]\nmin_bytes = 99999999999\n",
        "compression.min_bytes",
        "more than",
    );
    fails(
        "[compression]\ntypes = [\"text/html\", \"html\"]\n",
        "compression.types[1]",
        "not a media type",
    );
    fails(
        "[compression]\nencodings = [\"gzip\", \"zstd\"]\n",
        "compression.encodings[1]",
        "not \"br\" or \"gzip\"",
    );
    fails(
        "[compression]\nencodings = [\"gzip\", \"gzip\"]\n",
        "compression.encodings[1]",
        "twice",
    );
    fails(
        "[compression]\nencodings = []\n",
        "compression.encodings",
        "is empty",
    );
    let route = |keys: &str| format!("{UP}[[route]]\nupstream = \"app\"\n{keys}\n");
    fails(
        &route("cache = { ttl_s = 99999999999 }"),
        "route[0].cache.ttl_s",
        "a year",
    );
    fails(
        &route("cache = { stale_s = 99999999999 }"),
        "route[0].cache.stale_s",
        "a year",
    );
    fails(
        &route("cache = { set_cookie = \"keep\" }"),
        "route[0].cache.set_cookie",
        "not \"bypass\" or \"strip\"",
    );
    fails(
        &route("cache = { ttl = 5 }"),
        "route[0].cache.ttl",
        "unknown field",
    );
    let respond = "[[route]]\nrespond = { status = 200 }\n";
    fails(
        &format!("{respond}cache = {{}}\n"),
        "route[0].cache",
        "only for `upstream` routes",
    );
    fails(
        &format!("{respond}compress = true\n"),
        "route[0].compress",
        "only for `upstream` routes",
    );
}
