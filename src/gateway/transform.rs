//! Header transforms: `remove` / `set` / `add` for the upstream request and the client response,
//! with values built from templates (`${client_ip}`, `${consumer}`, `${route}`,
//! `${param.NAME}`, `${claim.NAME}`). Templates are parsed at load; rendering appends finished
//! field lines to a per-connection buffer that `http::write` adds to the head it writes.

use crate::router::Params;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Box<[u8]>),
    ClientIp,
    Consumer,
    Route,
    /// Index into the route pattern's parameter names.
    Param(usize),
    /// Index into the route's wanted claims (`RoutePolicy::claims`).
    Claim(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(Vec<Part>);

/// The transforms of one direction of one route.
#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    /// Lower-case names removed from the message (every `set` name is here too).
    pub remove: Vec<Box<[u8]>>,
    /// Fields added after the message's own ones.
    pub fields: Vec<(Box<[u8]>, Template)>,
}

/// What templates may refer to, for one request.
pub struct Vars<'a> {
    pub client_ip: &'a [u8],
    pub consumer: Option<&'a str>,
    pub route: &'a str,
    /// The request buffer the params index.
    pub buf: &'a [u8],
    pub params: &'a Params,
    pub claims: &'a [Option<String>],
}

// === impl Template ===

impl Template {
    /// Parse `s`. `params`: the route's pattern parameter names; `claim`: resolves a claim name
    /// to its index in the route's wanted claims (adding it), or refuses.
    pub fn parse(
        s: &str,
        params: &[String],
        claim: &mut dyn FnMut(&str) -> Result<usize, String>,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Lit(rest.as_bytes()[..start].into()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in \"{s}\""))?;
            let var = &after[..end];
            parts.push(match var {
                "client_ip" => Part::ClientIp,
                "consumer" => Part::Consumer,
                "route" => Part::Route,
                _ => {
                    if let Some(p) = var.strip_prefix("param.") {
                        let i = params.iter().position(|n| n == p).ok_or_else(|| {
                            format!("${{{var}}}: the route's `path` pattern has no {{{p}}}")
                        })?;
                        Part::Param(i)
                    } else if let Some(c) = var.strip_prefix("claim.") {
                        Part::Claim(claim(c)?)
                    } else {
                        return Err(format!(
                            "unknown variable ${{{var}}} (client_ip, consumer, route, param.NAME, claim.NAME)"
                        ));
                    }
                }
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.as_bytes().into()));
        }
        Ok(Template(parts))
    }

    /// A template that is only this text.
    pub fn literal(s: &str) -> Template {
        Template(vec![Part::Lit(s.as_bytes().into())])
    }

    /// Append the value; false (and `out` unchanged) when a variable has no value here or the
    /// value holds bytes not allowed in a field (a claim with a CR, say).
    pub fn render(&self, out: &mut Vec<u8>, v: &Vars<'_>) -> bool {
        let mark = out.len();
        for p in &self.0 {
            let piece: &[u8] = match p {
                Part::Lit(b) => b,
                Part::ClientIp => v.client_ip,
                Part::Consumer => match v.consumer {
                    Some(c) => c.as_bytes(),
                    None => return undo(out, mark),
                },
                Part::Route => v.route.as_bytes(),
                Part::Param(i) if *i < v.params.len => v.params.spans[*i].get(v.buf),
                Part::Param(_) => return undo(out, mark),
                Part::Claim(i) => match v.claims.get(*i) {
                    Some(Some(c)) => c.as_bytes(),
                    _ => return undo(out, mark),
                },
            };
            if !piece
                .iter()
                .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
            {
                return undo(out, mark);
            }
            out.extend_from_slice(piece);
        }
        true
    }
}

fn undo(out: &mut Vec<u8>, mark: usize) -> bool {
    out.truncate(mark);
    false
}

// === impl HeaderOps ===

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.fields.is_empty()
    }

    /// Append `Name: value\r\n` for every field whose template renders.
    pub fn render(&self, out: &mut Vec<u8>, v: &Vars<'_>) {
        for (name, t) in &self.fields {
            let mark = out.len();
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            if t.render(out, v) {
                out.extend_from_slice(b"\r\n");
            } else {
                out.truncate(mark);
            }
        }
    }
}

/// A field name as the config may give it: an RFC 9110 token.
pub fn valid_field_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Span;

    #[test]
    fn renders_every_variable_and_skips_missing_ones() {
        let names = vec!["id".to_string()];
        let mut wanted = Vec::<String>::new();
        let mut claim = |c: &str| {
            wanted.push(c.to_string());
            Ok(wanted.len() - 1)
        };
        let t = Template::parse(
            "u=${param.id} c=${consumer} ip=${client_ip} r=${route} s=${claim.sub}",
            &names,
            &mut claim,
        )
        .unwrap();
        let buf = b"/users/42";
        let mut params = Params::default();
        params.spans[0] = Span { start: 7, end: 9 };
        params.len = 1;
        let claims = vec![Some("alice".to_string())];
        let v = Vars {
            client_ip: b"10.0.0.1",
            consumer: Some("acme"),
            route: "users",
            buf,
            params: &params,
            claims: &claims,
        };
        let mut out = b"x".to_vec();
        assert!(t.render(&mut out, &v));
        assert_eq!(out, b"xu=42 c=acme ip=10.0.0.1 r=users s=alice");
        let v2 = Vars {
            consumer: None,
            ..v
        };
        let mut out = b"x".to_vec();
        assert!(!t.render(&mut out, &v2));
        assert_eq!(out, b"x");
        let bad = vec![Some("a\r\nX-Evil: 1".to_string())];
        let v3 = Vars { claims: &bad, ..v };
        assert!(!t.render(&mut Vec::new(), &v3));
    }

    #[test]
    fn refuses_unknown_variables() {
        let mut no_claims = |_: &str| Err("no jwt".to_string());
        assert!(Template::parse("${nope}", &[], &mut no_claims).is_err());
        assert!(Template::parse("${param.id}", &[], &mut no_claims).is_err());
        assert!(Template::parse("${claim.sub}", &[], &mut no_claims).is_err());
        assert!(Template::parse("${client_ip", &[], &mut no_claims).is_err());
        assert!(Template::parse("plain", &[], &mut no_claims).is_ok());
    }
}
