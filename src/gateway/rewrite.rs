//! Upstream path rewrites: strip a prefix, replace the route's prefix, or build the path from a
//! template with the pattern's `{param}`s. The query string is kept as the client sent it.

use crate::http::Span;
use crate::router::Params;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    None,
    /// Remove this prefix when the path starts with it ("/v1" + "/v1/users" → "/users").
    StripPrefix(String),
    /// Replace the leading `from` (the route's `path_prefix`) with `to`.
    ReplacePrefix {
        from: String,
        to: String,
    },
    /// Literal pieces and parameter indexes, e.g. "/users/{id}/orders".
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Param(usize),
}

impl Rewrite {
    /// Parse a `rewrite` template against the pattern's parameter names.
    pub fn template(s: &str, names: &[String]) -> Result<Rewrite, String> {
        if !s.starts_with('/') {
            return Err(format!("\"{s}\" must start with /"));
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in \"{s}\""))?
                + open;
            let name = rest[open + 1..close].trim_start_matches('*');
            let i = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("{{{name}}} is not a parameter of the route's `path`"))?;
            pieces.push(Piece::Param(i));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        if pieces
            .iter()
            .any(|p| matches!(p, Piece::Lit(l) if l.bytes().any(|b| b <= b' ' || b >= 0x7f)))
        {
            return Err(format!("\"{s}\" holds spaces or controls"));
        }
        Ok(Rewrite::Template(pieces))
    }

    /// Write the upstream request-target into `out` (cleared first). `target` is the client's
    /// path and query, `path` its path part; both index `buf`. Returns false when the rule does
    /// not change this request (send the client's target as it is).
    pub fn apply(
        &self,
        out: &mut Vec<u8>,
        buf: &[u8],
        target: Span,
        path: Span,
        params: &Params,
    ) -> bool {
        out.clear();
        let p = path.get(buf);
        let query = &buf[path.end as usize..target.end as usize];
        match self {
            Rewrite::None => return false,
            Rewrite::StripPrefix(pre) => {
                let Some(rest) = p.strip_prefix(pre.as_bytes()) else {
                    return false;
                };
                if !rest.starts_with(b"/") {
                    out.push(b'/');
                }
                out.extend_from_slice(rest);
            }
            Rewrite::ReplacePrefix { from, to } => {
                let Some(rest) = p.strip_prefix(from.as_bytes()) else {
                    return false;
                };
                out.extend_from_slice(to.as_bytes());
                if out.ends_with(b"/") && rest.starts_with(b"/") {
                    out.pop();
                }
                if out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(rest);
            }
            Rewrite::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Lit(l) => out.extend_from_slice(l.as_bytes()),
                        Piece::Param(i) if *i < params.len => {
                            out.extend_from_slice(params.spans[*i].get(buf))
                        }
                        Piece::Param(_) => {}
                    }
                }
            }
        }
        out.extend_from_slice(query);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &Rewrite, req: &str, params: &[(u32, u32)]) -> Option<String> {
        let buf = req.as_bytes();
        let q = req.find('?').unwrap_or(req.len()) as u32;
        let mut p = Params::default();
        for (i, (s, e)) in params.iter().enumerate() {
            p.spans[i] = Span { start: *s, end: *e };
            p.len += 1;
        }
        let mut out = Vec::new();
        let target = Span {
            start: 0,
            end: buf.len() as u32,
        };
        let path = Span { start: 0, end: q };
        rule.apply(&mut out, buf, target, path, &p)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn rules() {
        let strip = Rewrite::StripPrefix("/v1".into());
        assert_eq!(
            run(&strip, "/v1/users?a=1", &[]).as_deref(),
            Some("/users?a=1")
        );
        assert_eq!(run(&strip, "/v1", &[]).as_deref(), Some("/"));
        assert_eq!(run(&strip, "/v2/users", &[]), None);
        let rep = Rewrite::ReplacePrefix {
            from: "/api/".into(),
            to: "/internal/".into(),
        };
        assert_eq!(run(&rep, "/api/x?q", &[]).as_deref(), Some("/internal/x?q"));
        let names = vec!["id".to_string(), "rest".to_string()];
        let t = Rewrite::template("/u/{id}/o/{rest}", &names).unwrap();
        // "/users/42/orders/7": id = 42 (7..9), rest = 7 (17..18)
        assert_eq!(
            run(&t, "/users/42/orders/7?x", &[(7, 9), (17, 18)]).as_deref(),
            Some("/u/42/o/7?x")
        );
        assert!(Rewrite::template("/u/{nope}", &names).is_err());
        assert!(Rewrite::template("u/{id}", &names).is_err());
    }
}
