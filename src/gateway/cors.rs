//! CORS (the Fetch standard's CORS protocol): preflight `OPTIONS` answered by coregate itself,
//! and the `Access-Control-*` fields added to actual responses. Policies are built at load;
//! here only matching and rendering fields into a buffer.

use crate::http::request::Method;
use crate::http::HeaderSpan;

use super::methods::MethodSet;

#[derive(Debug)]
pub struct CorsPolicy {
    pub name: String,
    /// "*" was listed.
    pub any_origin: bool,
    pub origins: Vec<OriginMatch>,
    /// Empty: echo the requested method.
    pub methods: MethodSet,
    /// "authorization, content-type"; empty: echo the requested headers.
    pub headers: String,
    pub expose: String,
    pub credentials: bool,
    pub max_age_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginMatch {
    /// Lower-case serialised origin: "https://app.example.com".
    Exact(String),
    /// "https://*.example.com" → scheme "https://" and suffix ".example.com" (one label or more).
    Wildcard { scheme: String, suffix: String },
}

/// The request fields CORS looks at.
pub struct CorsRequest<'a> {
    pub origin: &'a [u8],
    /// Access-Control-Request-Method (preflight only).
    pub method: Option<&'a [u8]>,
    /// Access-Control-Request-Headers (preflight only).
    pub headers: Option<&'a [u8]>,
}

/// `Some` when the request carries `Origin`; `preflight` when it is OPTIONS with
/// Access-Control-Request-Method.
pub fn request<'a>(
    method: Method,
    buf: &'a [u8],
    headers: &[HeaderSpan],
) -> Option<(CorsRequest<'a>, bool)> {
    let find = |name: &[u8]| {
        headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.get(buf))
    };
    let origin = find(b"origin")?;
    let req = CorsRequest {
        origin,
        method: find(b"access-control-request-method"),
        headers: find(b"access-control-request-headers"),
    };
    let preflight = method == Method::Options && req.method.is_some();
    Some((req, preflight))
}

/// The method routing matches: a preflight is routed as the request it announces.
pub fn routing_method(method: Method, buf: &[u8], headers: &[HeaderSpan]) -> Method {
    match request(method, buf, headers) {
        Some((req, true)) => req.method.map_or(method, Method::of),
        _ => method,
    }
}

impl CorsPolicy {
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        if self.any_origin {
            return true;
        }
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        self.origins.iter().any(|m| match m {
            OriginMatch::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginMatch::Wildcard { scheme, suffix } => {
                let lower = origin.to_ascii_lowercase();
                lower.strip_prefix(scheme.as_str()).is_some_and(|host| {
                    host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                        && !host[..host.len() - suffix.len()].contains(['/', '.'])
                })
            }
        })
    }

    /// Answer a preflight: `true` with the fields written to `out` (204), or `false` (403) when
    /// the origin or the requested method is not allowed.
    pub fn preflight(&self, req: &CorsRequest<'_>, out: &mut Vec<u8>) -> bool {
        if !self.allows_origin(req.origin) {
            return false;
        }
        let wanted = req.method.unwrap_or(b"");
        if !self.methods.is_empty() {
            let ok = MethodSet::parse(&[std::str::from_utf8(wanted).unwrap_or("")])
                .is_ok_and(|m| !m.is_empty() && self.methods.union(m) == self.methods);
            if !ok {
                return false;
            }
        }
        self.origin_fields(req.origin, out);
        out.extend_from_slice(b"Access-Control-Allow-Methods: ");
        if self.methods.is_empty() {
            out.extend_from_slice(wanted);
        } else {
            self.methods.write(out);
        }
        out.extend_from_slice(b"\r\n");
        let headers = if self.headers.is_empty() {
            req.headers.unwrap_or(b"")
        } else {
            self.headers.as_bytes()
        };
        if !headers.is_empty() {
            field(out, b"Access-Control-Allow-Headers", headers);
        }
        if let Some(age) = self.max_age_s {
            field(
                out,
                b"Access-Control-Max-Age",
                itoa::Buffer::new().format(age).as_bytes(),
            );
        }
        true
    }

    /// Fields for an actual (non-preflight) response to an allowed origin; nothing otherwise.
    pub fn actual(&self, req: &CorsRequest<'_>, out: &mut Vec<u8>) {
        if !self.allows_origin(req.origin) {
            return;
        }
        self.origin_fields(req.origin, out);
        if !self.expose.is_empty() {
            field(
                out,
                b"Access-Control-Expose-Headers",
                self.expose.as_bytes(),
            );
        }
    }

    fn origin_fields(&self, origin: &[u8], out: &mut Vec<u8>) {
        if self.any_origin && !self.credentials {
            field(out, b"Access-Control-Allow-Origin", b"*");
        } else {
            field(out, b"Access-Control-Allow-Origin", origin);
            field(out, b"Vary", b"Origin");
        }
        if self.credentials {
            field(out, b"Access-Control-Allow-Credentials", b"true");
        }
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parse an `allow_origins` entry; `None` when it is not an origin or origin pattern.
pub fn parse_origin(s: &str) -> Option<OriginMatch> {
    let lower = s.to_ascii_lowercase();
    let (scheme, host) = lower.split_once("://")?;
    if scheme.is_empty() || host.is_empty() || host.contains('/') {
        return None;
    }
    let scheme = format!("{scheme}://");
    match host.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
            Some(OriginMatch::Wildcard {
                scheme,
                suffix: suffix.to_string(),
            })
        }
        Some(_) => None,
        None => Some(OriginMatch::Exact(lower)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            name: "web".into(),
            any_origin: false,
            origins: vec![
                parse_origin("https://app.example.com").unwrap(),
                parse_origin("https://*.example.org").unwrap(),
            ],
            methods: MethodSet::parse(&["GET", "POST"]).unwrap(),
            headers: "authorization, content-type".into(),
            expose: String::new(),
            credentials: true,
            max_age_s: Some(600),
        }
    }

    #[test]
    fn origins() {
        let p = policy();
        assert!(p.allows_origin(b"https://app.example.com"));
        assert!(p.allows_origin(b"https://a.example.org"));
        assert!(!p.allows_origin(b"https://a.b.example.org"));
        assert!(!p.allows_origin(b"https://example.org"));
        assert!(!p.allows_origin(b"http://a.example.org"));
        assert!(!p.allows_origin(b"https://evil.com"));
        assert!(parse_origin("example.com").is_none());
        assert!(parse_origin("https://*example.com").is_none());
    }

    #[test]
    fn preflight_fields() {
        let p = policy();
        let req = CorsRequest {
            origin: b"https://app.example.com",
            method: Some(b"POST"),
            headers: Some(b"content-type"),
        };
        let mut out = Vec::new();
        assert!(p.preflight(&req, &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Access-Control-Allow-Origin: https://app.example.com\r\n"));
        assert!(text.contains("Access-Control-Allow-Methods: GET, HEAD, POST\r\n"));
        assert!(text.contains("Access-Control-Max-Age: 600\r\n"));
        assert!(text.contains("Access-Control-Allow-Credentials: true\r\n"));
        let del = CorsRequest {
            method: Some(b"DELETE"),
            ..req
        };
        assert!(!p.preflight(&del, &mut Vec::new()));
    }
}
