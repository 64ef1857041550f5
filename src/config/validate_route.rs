//! `[[route]]` → `Route`s and the compiled `Router`: match keys (host, path forms, methods,
//! header conditions), the action (upstream, respond, aggregate), rewrites, policy names and
//! header transforms. Every problem names `route[i].key`.

use super::file::RouteFile;
use super::gateway_file::{AggregatePartFile, HeaderOpsFile};
use super::{ConfigError, Timeouts, Upstream};
use crate::config::defaults as d;
use crate::gateway::aggregate::{Aggregate, OnError, Part};
use crate::gateway::auth::Auth;
use crate::gateway::rate_limit::LimitKey;
use crate::gateway::rewrite::Rewrite;
use crate::gateway::transform::{valid_field_name, HeaderOps, Template};
use crate::gateway::{Gateway, RoutePolicy};
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
    errs: &mut Vec<ConfigError>,
) -> Router {
    let mut out = Vec::new();
    let mut file_index = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let before = errs.len();
        let route = route(i, r, upstreams, gw, timeouts, errs);
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
    let policy = policy(r, &key, &path, &names, &action, gw, errs)?;
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

fn policy(
    r: &RouteFile,
    key: &dyn Fn(&str) -> String,
    path: &PathMatch,
    names: &[String],
    action: &Action,
    gw: &Gateway,
    errs: &mut Vec<ConfigError>,
) -> Option<RoutePolicy> {
    let find = |k: &str, name: &Option<String>, all: Vec<&str>, errs: &mut Vec<ConfigError>| {
        let name = name.as_ref()?;
        let id = all.iter().position(|n| n == name);
        if id.is_none() {
            errs.push(ConfigError::new(
                key(k),
                format!("names {k} \"{name}\", which is not defined"),
            ));
        }
        id
    };
    let mut p = RoutePolicy {
        auth: find(
            "auth",
            &r.auth,
            gw.auths.iter().map(Auth::name).collect(),
            errs,
        ),
        rate_limit: find(
            "rate_limit",
            &r.rate_limit,
            gw.rate_limits.iter().map(|x| x.name.as_str()).collect(),
            errs,
        ),
        cors: find(
            "cors",
            &r.cors,
            gw.cors.iter().map(|x| x.name.as_str()).collect(),
            errs,
        ),
        ..RoutePolicy::default()
    };
    if let Some(rl) = p.rate_limit.map(|i| &gw.rate_limits[i]) {
        if rl.key == LimitKey::Consumer && p.auth.is_none() {
            errs.push(ConfigError::new(
                key("rate_limit"),
                format!(
                    "\"{}\" is keyed by consumer, which needs an `auth` on the route",
                    rl.name
                ),
            ));
        }
    }
    p.rewrite = rewrite(r, key, path, names, action, errs);
    let jwt = p.auth.and_then(|i| match &gw.auths[i] {
        Auth::Jwt(j) => Some(&**j),
        Auth::ApiKey(_) => None,
    });
    let mut claims = Vec::new();
    let mut claim = |c: &str| -> Result<usize, String> {
        if jwt.is_none() {
            return Err(format!("${{claim.{c}}} needs a JWT `auth` on the route"));
        }
        Ok(claims.iter().position(|x| x == c).unwrap_or_else(|| {
            claims.push(c.to_string());
            claims.len() - 1
        }))
    };
    let mut request_ops = ops(
        r.request_headers.as_ref(),
        &key("request_headers"),
        names,
        &mut claim,
        errs,
    );
    if let Some(j) = jwt {
        for (c, header) in &j.claims_to_headers {
            let t = Template::parse(&format!("${{claim.{c}}}"), names, &mut claim);
            if let Ok(t) = t {
                request_ops
                    .remove
                    .push(header.to_ascii_lowercase().into_bytes().into());
                request_ops.fields.push((header.as_bytes().into(), t));
            }
        }
    }
    p.request_ops = request_ops;
    p.response_ops = ops(
        r.response_headers.as_ref(),
        &key("response_headers"),
        names,
        &mut claim,
        errs,
    );
    p.claims = claims;
    Some(p)
}

fn rewrite(
    r: &RouteFile,
    key: &dyn Fn(&str) -> String,
    path: &PathMatch,
    names: &[String],
    action: &Action,
    errs: &mut Vec<ConfigError>,
) -> Option<Rewrite> {
    let given = [&r.strip_prefix, &r.replace_prefix, &r.rewrite];
    let count = given.iter().filter(|g| g.is_some()).count();
    if count == 0 {
        return None;
    }
    let k = if r.rewrite.is_some() {
        "rewrite"
    } else if r.strip_prefix.is_some() {
        "strip_prefix"
    } else {
        "replace_prefix"
    };
    let fail = |errs: &mut Vec<ConfigError>, p: &str| {
        errs.push(ConfigError::new(key(k), p));
        None
    };
    if count > 1 {
        return fail(
            errs,
            "give at most one of `strip_prefix`, `replace_prefix` and `rewrite`",
        );
    }
    if !matches!(action, Action::Proxy(_)) {
        return fail(errs, "rewrites apply to `upstream` routes only");
    }
    let path_ok = |p: &str| p.starts_with('/') && !p.bytes().any(|b| b <= b' ' || b >= 0x7f);
    if let Some(s) = &r.strip_prefix {
        if !path_ok(s) {
            return fail(errs, "must start with / and hold no spaces or controls");
        }
        return Some(Rewrite::StripPrefix(s.clone()));
    }
    if let Some(to) = &r.replace_prefix {
        let PathMatch::Prefix(from) = path else {
            return fail(errs, "needs the route to match with `path_prefix`");
        };
        if !path_ok(to) {
            return fail(errs, "must start with / and hold no spaces or controls");
        }
        return Some(Rewrite::ReplacePrefix {
            from: from.clone(),
            to: to.clone(),
        });
    }
    match Rewrite::template(r.rewrite.as_deref().unwrap_or("/"), names) {
        Ok(rw) => Some(rw),
        Err(e) => fail(errs, &e),
    }
}

fn ops(
    f: Option<&HeaderOpsFile>,
    key: &str,
    names: &[String],
    claim: &mut dyn FnMut(&str) -> Result<usize, String>,
    errs: &mut Vec<ConfigError>,
) -> HeaderOps {
    let mut out = HeaderOps::default();
    let Some(f) = f else {
        return out;
    };
    let name_ok = |n: &str, k: &str, errs: &mut Vec<ConfigError>| {
        let ok = valid_field_name(n);
        if !ok {
            errs.push(ConfigError::new(
                format!("{key}.{k}"),
                format!("\"{n}\" is not a field name"),
            ));
        }
        ok
    };
    for n in &f.remove {
        if name_ok(n, "remove", errs) {
            out.remove.push(n.to_ascii_lowercase().into_bytes().into());
        }
    }
    for (k, list, replaces) in [("set", &f.set, true), ("add", &f.add, false)] {
        for (n, v) in list {
            if !name_ok(n, k, errs) {
                continue;
            }
            match Template::parse(v, names, claim) {
                Ok(t) => {
                    if replaces {
                        out.remove.push(n.to_ascii_lowercase().into_bytes().into());
                    }
                    out.fields.push((n.as_bytes().into(), t));
                }
                Err(e) => errs.push(ConfigError::new(format!("{key}.{k}.{n}"), e)),
            }
        }
    }
    out
}
