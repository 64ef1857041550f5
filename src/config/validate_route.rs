//! `[[route]]` → `Route`s and the compiled `Router`: match keys (host, path forms, methods,
//! header conditions), the action (upstream, respond, aggregate), rewrites, policy names and
//! header transforms. Every problem names `route[i].key`.

use super::file::RouteFile;
use super::gateway_file::AggregatePartFile;
use super::{ConfigError, ServerSettings, Timeouts, Upstream};
use crate::config::defaults as d;
use crate::gateway::aggregate::{Aggregate, OnError, Part};
use crate::gateway::rewrite::Rewrite;
use crate::gateway::transform::valid_field_name;
use crate::gateway::Gateway;
use crate::router::{
    Action, HeaderCond, HostMatch, MethodSet, PathMatch, Route, Router, PARAMS_MAX,
};

/// Finds an upstream by name (`key`, `name`), reporting an unknown one.
type UpstreamLookup<'a> = dyn Fn(&str, &str, &mut Vec<ConfigError>) -> Option<usize> + 'a;

pub(super) fn routes(
    files: &[RouteFile],
    upstreams: &[Upstream],
    gw: &Gateway,
    timeouts: &Timeouts,
    server: &ServerSettings,
    cache: &crate::cache::CacheSettings,
    errs: &mut Vec<ConfigError>,
) -> Router {
    let mut out = Vec::new();
    let mut file_index = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let before = errs.len();
        let route = route(i, r, upstreams, gw, timeouts, errs).map(|mut route| {
            super::validate_route_policy::edge(r, i, server, &mut route.policy, errs);
            let (action, policy) = (&route.action, &mut route.policy);
            super::validate_cache::route(r, i, action, cache, policy, errs);
            super::validate_cache::finish(&mut route.policy);
            route
        });
        if let (Some(route), true) = (route, errs.len() == before) {
            out.push(route);
            file_index.push(i);
        }
    }
    match Router::new(out) {
        Ok(router) => router,
        Err(e) => {
            errs.push(ConfigError::new(
                format!("route[{}].path", file_index[e.route]),
                format!("pattern refused: {}", e.problem),
            ));
            Router::new(Vec::new()).unwrap_or_else(|_| unreachable!("an empty table compiles"))
        }
    }
}

fn route(
    i: usize,
    r: &RouteFile,
    upstreams: &[Upstream],
    gw: &Gateway,
    timeouts: &Timeouts,
    errs: &mut Vec<ConfigError>,
) -> Option<Route> {
    let key = |k: &str| format!("route[{i}].{k}");
    let err =
        |errs: &mut Vec<ConfigError>, k: &str, p: String| errs.push(ConfigError::new(key(k), p));
    let host = match &r.host {
        None => HostMatch::Any,
        Some(h) => HostMatch::parse(h).or_else(|| {
            err(
                errs,
                "host",
                format!("\"{h}\" is not a host name or *.suffix"),
            );
            None
        })?,
    };
    let path = path_match(r, &key, errs)?;
    let methods = match &r.methods {
        None => None,
        Some(list) if list.is_empty() => {
            err(
                errs,
                "methods",
                "is empty; leave it out to accept every method".into(),
            );
            None
        }
        Some(list) => match MethodSet::parse(list) {
            Ok(m) => Some(m),
            Err(bad) => {
                err(errs, "methods", format!("\"{bad}\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"));
                None
            }
        },
    };
    let mut headers = Vec::new();
    for (name, value) in &r.headers {
        if !valid_field_name(name) {
            err(errs, "headers", format!("\"{name}\" is not a field name"));
        }
        headers.push(HeaderCond {
            name: name.to_ascii_lowercase(),
            value: (value != "*").then(|| value.clone()),
        });
    }
    let names = match &path {
        PathMatch::Pattern { names, .. } => names.clone(),
        _ => Vec::new(),
    };
    let action = action(r, &key, &names, upstreams, timeouts, errs)?;
    let policy = super::validate_route_policy::policy(r, &key, &path, &names, &action, gw, errs)?;
    Some(Route {
        name: r.name.clone().unwrap_or_else(|| format!("route{i}")),
        host,
        path,
        methods,
        headers,
        action,
        retry_non_idempotent: r.retry_non_idempotent,
        policy,
    })
}

fn path_match(
    r: &RouteFile,
    key: &dyn Fn(&str) -> String,
    errs: &mut Vec<ConfigError>,
) -> Option<PathMatch> {
    let given = [&r.path_exact, &r.path, &r.path_prefix];
    if given.iter().filter(|p| p.is_some()).count() > 1 {
        errs.push(ConfigError::new(
            key("path"),
            "give at most one of `path_exact`, `path` and `path_prefix`",
        ));
        return None;
    }
    let (k, text) = match (&r.path_exact, &r.path, &r.path_prefix) {
        (Some(p), _, _) => ("path_exact", p.as_str()),
        (_, Some(p), _) => ("path", p.as_str()),
        (_, _, Some(p)) => ("path_prefix", p.as_str()),
        _ => ("path_prefix", "/"),
    };
    if !text.starts_with('/') || text.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        errs.push(ConfigError::new(
            key(k),
            format!("\"{text}\" must start with / and hold no spaces or controls"),
        ));
        return None;
    }
    Some(match k {
        "path_exact" => PathMatch::Exact(text.into()),
        "path_prefix" => PathMatch::Prefix(text.into()),
        _ => {
            let names = param_names(text);
            if names.len() > PARAMS_MAX {
                errs.push(ConfigError::new(
                    key("path"),
                    format!("more than {PARAMS_MAX} parameters"),
                ));
                return None;
            }
            PathMatch::Pattern {
                pattern: text.into(),
                names,
            }
        }
    })
}

/// `{name}` and `{*name}` segments of a matchit pattern, in order (`{{` is a literal brace).
fn param_names(pattern: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = pattern.replace("{{", "").replace("}}", "");
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        names.push(
            rest[open + 1..open + close]
                .trim_start_matches('*')
                .to_string(),
        );
        rest = rest[open + close + 1..].to_string();
    }
    names
}

fn action(
    r: &RouteFile,
    key: &dyn Fn(&str) -> String,
    names: &[String],
    upstreams: &[Upstream],
    timeouts: &Timeouts,
    errs: &mut Vec<ConfigError>,
) -> Option<Action> {
    let upstream_id = |k: &str, name: &str, errs: &mut Vec<ConfigError>| {
        let id = upstreams.iter().position(|u| u.name == name);
        if id.is_none() {
            errs.push(ConfigError::new(
                key(k),
                format!("names upstream \"{name}\", which is not defined"),
            ));
        }
        id
    };
    if r.aggregate_on_error.is_some() && r.aggregate.is_none() {
        errs.push(ConfigError::new(
            key("aggregate_on_error"),
            "is only for `aggregate` routes",
        ));
    }
    let i = key("").trim_end_matches('.').to_string();
    match (&r.upstream, &r.respond, &r.aggregate) {
        (Some(u), None, None) => upstream_id("upstream", u, errs).map(Action::Proxy),
        (None, Some(resp), None) => {
            super::validate::respond(resp, &key("respond"), errs).map(Action::Respond)
        }
        (None, None, Some(parts)) => {
            let on_error = match r.aggregate_on_error.as_deref().unwrap_or("partial") {
                "partial" => OnError::Partial,
                "fail" => OnError::Fail,
                other => {
                    errs.push(ConfigError::new(
                        key("aggregate_on_error"),
                        format!("\"{other}\" is not \"partial\" or \"fail\""),
                    ));
                    return None;
                }
            };
            let parts = aggregate_parts(parts, key, names, timeouts, &upstream_id, errs)?;
            Some(Action::Aggregate(Aggregate { parts, on_error }))
        }
        _ => {
            errs.push(ConfigError::new(
                i,
                "needs exactly one of `upstream`, `respond` and `aggregate`",
            ));
            None
        }
    }
}

fn aggregate_parts(
    files: &[AggregatePartFile],
    key: &dyn Fn(&str) -> String,
    names: &[String],
    timeouts: &Timeouts,
    upstream_id: &UpstreamLookup<'_>,
    errs: &mut Vec<ConfigError>,
) -> Option<Vec<Part>> {
    if files.is_empty() || files.len() > d::AGGREGATE_PARTS_MAX {
        errs.push(ConfigError::new(
            key("aggregate"),
            format!("list 1..={} parts", d::AGGREGATE_PARTS_MAX),
        ));
        return None;
    }
    let mut parts: Vec<Part> = Vec::new();
    for (j, p) in files.iter().enumerate() {
        let k = |f: &str| format!("aggregate[{j}].{f}");
        if p.key.is_empty() || parts.iter().any(|x| x.key == p.key) {
            errs.push(ConfigError::new(
                key(&k("key")),
                "must be non-empty and unique",
            ));
        }
        let id = upstream_id(&k("upstream"), &p.upstream, errs);
        let path = match Rewrite::template(&p.path, names) {
            Ok(Rewrite::Template(pieces)) => pieces,
            Ok(_) => Vec::new(),
            Err(e) => {
                errs.push(ConfigError::new(key(&k("path")), e));
                Vec::new()
            }
        };
        let timeout_ms = p
            .timeout_ms
            .unwrap_or(timeouts.upstream_response.as_millis() as u64);
        super::validate::check_ms(
            &key(&k("timeout_ms")),
            timeout_ms,
            1,
            d::TIMEOUT_MS_MAX,
            errs,
        );
        parts.push(Part {
            key: p.key.clone(),
            upstream: id.unwrap_or(0),
            path,
            timeout: std::time::Duration::from_millis(timeout_ms),
        });
    }
    Some(parts)
}
