//! A route's gateway settings → `RoutePolicy`: the auth, rate-limit and CORS policies it names,
//! its rewrite, and its header transforms (JWT `claims_to_headers` become request `set`s).

use super::file::RouteFile;
use super::gateway_file::HeaderOpsFile;
use super::{ConfigError, ServerSettings};
use crate::gateway::auth::{Auth, JwtAuth};
use crate::gateway::rate_limit::LimitKey;
use crate::gateway::rewrite::Rewrite;
use crate::gateway::transform::{valid_field_name, HeaderOps, Template};
use crate::gateway::{Gateway, RoutePolicy};
use crate::router::{Action, PathMatch};

pub(super) fn policy(
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
    transforms(r, key, names, jwt, &mut p, errs);
    Some(p)
}

/// Request and response transforms, with the claims their templates use collected into
/// `p.claims` (a claim needs a JWT `auth`).
fn transforms(
    r: &RouteFile,
    key: &dyn Fn(&str) -> String,
    names: &[String],
    jwt: Option<&JwtAuth>,
    p: &mut RoutePolicy,
    errs: &mut Vec<ConfigError>,
) {
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
}

/// The reverse-proxy settings of route `i`: CIDR lists, body limit, and the node-wide hiding of
/// upstream fields merged into its response transforms (a route's own `set` of a hidden name
/// still applies: it adds coregate's field after the upstream's is removed).
pub(super) fn edge(
    r: &RouteFile,
    i: usize,
    server: &ServerSettings,
    p: &mut RoutePolicy,
    errs: &mut Vec<ConfigError>,
) {
    let rules = super::validate_edge::ip_rules(&r.allow, &r.deny, &format!("route[{i}]"), errs);
    p.access = (!rules.is_empty()).then_some(rules);
    p.body_bytes_max = r.body_bytes_max;
    let ops = &mut p.response_ops;
    for name in &server.hide_response_headers {
        if !ops.remove.contains(name) {
            ops.remove.push(name.clone());
        }
    }
    if let Some(value) = &server.server_header {
        let sets_server = ops
            .fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"server"));
        if !sets_server {
            if !ops.remove.iter().any(|n| &**n == b"server") {
                ops.remove.push(b"server".to_vec().into_boxed_slice());
            }
            ops.fields
                .push((b"Server".to_vec().into(), Template::literal(value)));
        }
    }
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
