//! `FileConfig` → `Config`: every check and every build step, collecting all problems at once so
//! that one `coregate check` run lists everything wrong with a file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::defaults as d;
use super::file::*;
use super::*;
use crate::http::canned::StaticResponse;
use crate::router::HostMatch;

pub(super) fn build(file: FileConfig, path: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let server = server(&file.server, &mut errs);
    let limits = limits(&file.limits, &mut errs);
    let timeouts = timeouts(&file.timeouts, &mut errs);
    let log = log(&file.log, path, &mut errs);
    let listeners = listeners(&file.listeners, path, &mut errs);
    let admin = file
        .admin
        .as_ref()
        .and_then(|a| admin(a, &listeners, &mut errs));
    let (upstreams, pools) = super::upstream::build(&file.upstreams, path, &mut errs);
    let discovery = super::discovery::settings(&file.discovery, &mut errs);
    let dir = path.parent().unwrap_or(Path::new("."));
    let gateway = super::validate_auth::gateway(&file, dir, &mut errs);
    let cache = super::validate_cache::cache(&file.cache, &mut errs);
    let compression = super::validate_cache::compression(&file.compression, &mut errs);
    let router = super::validate_route::routes(
        &file.routes,
        &upstreams,
        &gateway,
        &timeouts,
        &server,
        &cache,
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Config {
        source: path.to_path_buf(),
        server,
        admin,
        log,
        limits,
        timeouts,
        listeners,
        upstreams: upstreams.into_iter().map(std::sync::Arc::new).collect(),
        discovery,
        pool_count: pools.len(),
        pools,
        router,
        gateway,
        document: toml::Table::new(),
        cache,
        compression,
    })
}

fn admin(
    f: &AdminFile,
    listeners: &[Listener],
    errs: &mut Vec<ConfigError>,
) -> Option<AdminSettings> {
    let listen = match f.listen.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 && listeners.iter().any(|l| l.addr == a) => {
            errs.push(ConfigError::new(
                "admin.listen",
                format!("{a} is also a [[listener]] address"),
            ));
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            errs.push(ConfigError::new(
                "admin.listen",
                format!("\"{}\" is not an IP:port address", f.listen),
            ));
            None
        }
    };
    if let Some(t) = &f.token {
        // A bearer token (RFC 6750 token68 characters), so that it fits in one field.
        let ok = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
        if !ok {
            errs.push(ConfigError::new(
                "admin.token",
                "must be non-empty, of letters, digits and -._~+/=",
            ));
        }
    }
    Some(AdminSettings {
        listen: listen?,
        token: f.token.clone(),
    })
}

fn server(f: &ServerFile, errs: &mut Vec<ConfigError>) -> ServerSettings {
    match &f.workers {
        Workers::Count(0) => errs.push(ConfigError::new(
            "server.workers",
            "must be at least 1 (or \"auto\")",
        )),
        Workers::Count(n) if *n > 4096 => errs.push(ConfigError::new(
            "server.workers",
            format!("{n} workers is more than 4096"),
        )),
        Workers::Cores(c) if c.is_empty() => {
            errs.push(ConfigError::new("server.workers", "the core list is empty"))
        }
        Workers::Cores(c) => {
            let mut seen = c.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != c.len() {
                errs.push(ConfigError::new("server.workers", "a core is listed twice"));
            }
        }
        _ => {}
    }
    check_ms(
        "server.drain_timeout_ms",
        f.drain_timeout_ms,
        0,
        d::TIMEOUT_MS_MAX,
        errs,
    );
    let (hide_response_headers, server_header) = super::validate_edge::hiding(f, errs);
    ServerSettings {
        workers: f.workers.clone(),
        driver: f.driver,
        drain_timeout: Duration::from_millis(f.drain_timeout_ms),
        hide_response_headers,
        server_header,
    }
}

fn log(f: &LogFile, path: &Path, errs: &mut Vec<ConfigError>) -> LogSettings {
    if !["error", "warn", "info", "debug", "trace"].contains(&f.level.as_str()) {
        errs.push(ConfigError::new(
            "log.level",
            format!(
                "\"{}\" is not one of error, warn, info, debug, trace",
                f.level
            ),
        ));
    }
    let (access, access_format, access_fields) = super::validate_edge::access_log(f, path, errs);
    LogSettings {
        level: f.level.clone(),
        format: f.format,
        access,
        access_format,
        access_fields,
    }
}

fn limits(f: &LimitsFile, errs: &mut Vec<ConfigError>) -> Limits {
    let mut range = |key: &str, v: usize, min: usize, max: usize| {
        if v < min || v > max {
            errs.push(ConfigError::new(
                format!("limits.{key}"),
                format!("{v} is outside {min}..={max}"),
            ));
        }
    };
    range(
        "header_bytes_max",
        f.header_bytes_max,
        d::HEADER_BYTES_MIN,
        d::HEADER_BYTES_LIMIT,
    );
    range(
        "header_count_max",
        f.header_count_max,
        1,
        d::HEADER_COUNT_LIMIT,
    );
    range("uri_bytes_max", f.uri_bytes_max, 16, f.header_bytes_max);
    range(
        "connections_per_shard_max",
        f.connections_per_shard_max,
        1,
        10_000_000,
    );
    range(
        "idle_release_connections",
        f.idle_release_connections,
        0,
        10_000_000,
    );
    Limits {
        header_bytes_max: f.header_bytes_max,
        header_count_max: f.header_count_max,
        uri_bytes_max: f.uri_bytes_max,
        body_bytes_max: f.body_bytes_max,
        connections_per_shard_max: f.connections_per_shard_max,
        connections_per_ip_max: f.connections_per_ip_max,
        idle_release_connections: f.idle_release_connections,
        body_rate_min: super::validate_edge::body_rate(f, errs),
    }
}

pub(super) fn check_ms(key: &str, v: u64, min: u64, max: u64, errs: &mut Vec<ConfigError>) {
    if v < min || v > max {
        errs.push(ConfigError::new(
            key,
            format!("{v} ms is outside {min}..={max} ms"),
        ));
    }
}

fn timeouts(f: &TimeoutsFile, errs: &mut Vec<ConfigError>) -> Timeouts {
    // The one timeout that may be 0: it turns lingering off.
    let linger = f.client_linger_ms;
    check_ms(
        "timeouts.client_linger_ms",
        linger,
        0,
        d::TIMEOUT_MS_MAX,
        errs,
    );
    let mut ms = |key: &str, v: u64| {
        check_ms(&format!("timeouts.{key}"), v, 1, d::TIMEOUT_MS_MAX, errs);
        Duration::from_millis(v)
    };
    Timeouts {
        client_header: ms("client_header_ms", f.client_header_ms),
        client_body: ms("client_body_ms", f.client_body_ms),
        client_idle: ms("client_idle_ms", f.client_idle_ms),
        client_send: ms("client_send_ms", f.client_send_ms),
        client_linger: Duration::from_millis(linger),
        client_linger_idle: ms("client_linger_idle_ms", f.client_linger_idle_ms),
        tls_handshake: ms("tls_handshake_ms", f.tls_handshake_ms),
        upstream_connect: ms("upstream_connect_ms", f.upstream_connect_ms),
        upstream_response: ms("upstream_response_ms", f.upstream_response_ms),
        upstream_idle: ms("upstream_idle_ms", f.upstream_idle_ms),
        tunnel_idle: ms("tunnel_idle_ms", f.tunnel_idle_ms),
    }
}

fn listeners(files: &[ListenerFile], path: &Path, errs: &mut Vec<ConfigError>) -> Vec<Listener> {
    if files.is_empty() {
        let addr = d::LISTEN.parse().expect("default listen address parses");
        return vec![Listener {
            name: "default".into(),
            addr,
            tls: None,
            access: Default::default(),
        }];
    }
    let mut out: Vec<Listener> = Vec::new();
    for (i, l) in files.iter().enumerate() {
        let key = format!("listener[{i}].listen");
        let addr = match l.listen.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errs.push(ConfigError::new(
                    key,
                    format!("\"{}\" is not an IP:port address", l.listen),
                ));
                continue;
            }
        };
        let name = l.name.clone().unwrap_or_else(|| format!("listener{i}"));
        if addr.port() != 0 && out.iter().any(|o| o.addr == addr) {
            errs.push(ConfigError::new(key, format!("{addr} is listed twice")));
        }
        if out.iter().any(|o| o.name == name) {
            errs.push(ConfigError::new(
                format!("listener[{i}].name"),
                format!("\"{name}\" is used twice"),
            ));
        }
        let tls = l
            .tls
            .as_ref()
            .and_then(|t| tls(t, &format!("listener[{i}].tls"), path, errs));
        let access =
            super::validate_edge::ip_rules(&l.allow, &l.deny, &format!("listener[{i}]"), errs);
        out.push(Listener {
            name,
            addr,
            tls,
            access,
        });
    }
    out
}

/// Load a listener's certificates now, so that a bad file fails `coregate check`.
fn tls(
    t: &TlsFile,
    key: &str,
    path: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<crate::tls::TlsSettings> {
    let load = |cert: &str, pkey: &str, at: &str, errs: &mut Vec<ConfigError>| {
        crate::tls::load_certified_key(&relative_to(path, cert), &relative_to(path, pkey))
            .map_err(|e| errs.push(ConfigError::new(at, e)))
            .ok()
    };
    let default = load(&t.cert, &t.key, key, errs);
    let mut sni = Vec::new();
    for (j, s) in t.sni.iter().enumerate() {
        let at = format!("{key}.sni[{j}]");
        if HostMatch::parse(&s.server_name).is_none_or(|m| !matches!(m, HostMatch::Exact(_))) {
            errs.push(ConfigError::new(
                format!("{at}.server_name"),
                format!("\"{}\" is not a host name", s.server_name),
            ));
            continue;
        }
        if let Some(k) = load(&s.cert, &s.key, &at, errs) {
            sni.push((s.server_name.clone(), k));
        }
    }
    match crate::tls::TlsSettings::new(default?, sni) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(ConfigError::new(key, e));
            None
        }
    }
}

pub(super) fn respond(
    r: &RespondFile,
    key: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<StaticResponse> {
    if !(200..=599).contains(&r.status) {
        errs.push(ConfigError::new(
            format!("{key}.status"),
            format!("{} is outside 200..=599", r.status),
        ));
        return None;
    }
    let ct_ok = !r.content_type.is_empty()
        && r.content_type
            .bytes()
            .all(|b| b == b'\t' || (b' '..0x7f).contains(&b));
    if !ct_ok {
        errs.push(ConfigError::new(
            format!("{key}.content_type"),
            "must be printable ASCII",
        ));
        return None;
    }
    Some(StaticResponse::new(
        r.status,
        &r.content_type,
        r.body.as_bytes(),
    ))
}
