//! Request heads: httparse for the syntax, then the RFC 9112 rules httparse leaves to us
//! (framing, Host, request-target forms, limits). Ambiguity is refused, never guessed.

use std::mem::MaybeUninit;

use super::header::{self, FramingError, FramingSeen, HeaderKind, HeaderSpan, Span};
use super::{BodyKind, Version};
use crate::config::defaults::HEADER_COUNT_LIMIT;
use crate::config::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    Other,
}

impl Method {
    pub fn of(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// A parsed, validated request head. Spans index the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// What to send upstream as the request-target: origin-form path and query
    /// (for an absolute-form target, its path part; "*" for `OPTIONS *`).
    pub target: Span,
    /// `target` without its query, for routing.
    pub path: Span,
    pub version: Version,
    /// Host field value, or the authority of an absolute-form target (which then wins).
    pub authority: Option<Span>,
    /// Bytes of the head, CRLFCRLF included.
    pub head_len: usize,
    pub body: BodyKind,
    /// The client wants the connection kept after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// An upgrade request to forward (`Connection: upgrade` with an `Upgrade` field, HTTP/1.1,
    /// no body, not h2c): a 101 answer turns the connection into a tunnel.
    pub upgrade: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the reason goes to the log only.
    Bad(&'static str),
    /// 414
    UriTooLong,
    /// 431: head bytes or field count over the limits.
    HeadTooLarge,
    /// 405: CONNECT (coregate is not a forward proxy).
    MethodNotAllowed,
    /// 417: an Expect other than 100-continue.
    ExpectationFailed,
    /// 505
    VersionNotSupported,
}

/// Parse `buf` (bytes read so far). `Ok(None)`: the head is not complete yet.
/// `headers` is the connection's reusable field list; it is overwritten.
pub fn parse(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<RequestHead>, RequestError> {
    let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; HEADER_COUNT_LIMIT];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut raw[..limits.header_count_max]);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(RequestError::Bad("malformed request head")),
    };
    if head_len > limits.header_bytes_max {
        return Err(RequestError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Bad("incomplete request line"));
    };
    if target.len() > limits.uri_bytes_max {
        return Err(RequestError::UriTooLong);
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    headers.clear();
    for h in req.headers.iter() {
        if h.name.is_empty() {
            return Err(RequestError::Bad("empty field name"));
        }
        let name = Span::of(buf, h.name.as_bytes());
        headers.push(HeaderSpan {
            name,
            value: Span::of(buf, h.value),
            kind: HeaderKind::of(h.name.as_bytes()),
        });
    }
    let method_kind = Method::of(method.as_bytes());
    if method_kind == Method::Connect {
        return Err(RequestError::MethodNotAllowed);
    }
    let form = target_form(target.as_bytes(), method_kind)?;
    let target_span = Span::of(buf, target.as_bytes());
    let (target, authority_in_target) = match form {
        TargetForm::Origin => (target_span, None),
        TargetForm::Asterisk => (target_span, None),
        TargetForm::Absolute {
            authority,
            path_start,
        } => {
            let a = Span {
                start: target_span.start + authority.start,
                end: target_span.start + authority.end,
            };
            let t = Span {
                start: target_span.start + path_start,
                end: target_span.end,
            };
            (t, Some(a))
        }
    };
    let host = host_field(buf, headers, version)?;
    let authority = authority_in_target.or(host);
    let conn = header::apply_connection(buf, headers);
    let body = match header::framing(buf, headers) {
        Ok(None) => BodyKind::None,
        Ok(Some(FramingSeen::Length(n))) => BodyKind::Length(n),
        Ok(Some(FramingSeen::Chunked)) if version == Version::Http10 => {
            return Err(RequestError::Bad(
                "transfer-encoding in an HTTP/1.0 request",
            ))
        }
        Ok(Some(FramingSeen::Chunked)) => BodyKind::Chunked,
        Err(e) => return Err(RequestError::Bad(framing_reason(e))),
    };
    let expect_continue = expectation(buf, headers, version)?;
    let upgrade = conn.upgrade
        && version == Version::Http11
        && body == BodyKind::None
        && upgrade_wanted(buf, headers);
    let keep_alive = match version {
        Version::Http11 => !conn.close,
        Version::Http10 => conn.keep_alive && !conn.close,
    };
    let path_end = target
        .get(buf)
        .iter()
        .position(|&b| b == b'?')
        .map_or(target.end, |q| target.start + q as u32);
    Ok(Some(RequestHead {
        method: method_kind,
        method_span: Span::of(buf, method.as_bytes()),
        target,
        path: Span {
            start: target.start,
            end: path_end,
        },
        version,
        authority,
        head_len,
        body,
        keep_alive,
        expect_continue,
        upgrade,
    }))
}

/// The Upgrade fields name at least one protocol, and none is h2c (cleartext HTTP/2 is not
/// spoken here; such a request is forwarded as plain HTTP/1.1 without its Upgrade).
fn upgrade_wanted(buf: &[u8], headers: &[HeaderSpan]) -> bool {
    let mut any = false;
    for h in headers.iter().filter(|h| is_upgrade(buf, h)) {
        for p in header::list_items(h.value.get(buf)) {
            if p.eq_ignore_ascii_case(b"h2c") {
                return false;
            }
            any = true;
        }
    }
    any
}

/// An `Upgrade` field (hop-by-hop: copied only for upgrade requests and 101 answers).
pub fn is_upgrade(buf: &[u8], h: &HeaderSpan) -> bool {
    h.kind == HeaderKind::HopByHop && h.name.get(buf).eq_ignore_ascii_case(b"upgrade")
}

/// An incomplete head that already fills the limit will never fit: 414 when the request line
/// alone is too long, 431 otherwise. While the request line is incomplete, 414 needs the target
/// seen so far to be over the limit, exactly as for a complete head: whether a request is
/// served must not depend on how it was split into reads (a long method is not a long target).
fn partial(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, RequestError> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    if line_end.is_none() && target_so_far(buf) > limits.uri_bytes_max {
        return Err(RequestError::UriTooLong);
    }
    if buf.len() >= limits.header_bytes_max {
        return Err(if line_end.is_none() {
            RequestError::UriTooLong
        } else {
            RequestError::HeadTooLarge
        });
    }
    Ok(None)
}

/// Length of the request-target in an incomplete request line: from after the first SP to the
/// next SP or the end of the bytes.
fn target_so_far(line: &[u8]) -> usize {
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return 0;
    };
    let rest = &line[sp + 1..];
    rest.iter().position(|&b| b == b' ').unwrap_or(rest.len())
}

fn version_error(buf: &[u8]) -> RequestError {
    // "HTTP/2.0" or "HTTP/3.0" is a well-formed version we do not speak; anything else is junk.
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.split(|&b| b == b' ').count() != 3 {
        return RequestError::Bad("malformed request line");
    }
    match line.rsplit(|&b| b == b' ').next() {
        Some(v) if v.len() == 8 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() => {
            RequestError::VersionNotSupported
        }
        _ => RequestError::Bad("malformed HTTP version"),
    }
}

fn framing_reason(e: FramingError) -> &'static str {
    match e {
        FramingError::InvalidLength => "invalid content-length",
        FramingError::ConflictingLength => "conflicting content-length values",
        FramingError::UnsupportedEncoding => "transfer-encoding other than chunked",
        FramingError::LengthAndEncoding => "both content-length and transfer-encoding",
    }
}

enum TargetForm {
    Origin,
    Asterisk,
    /// Offsets within the target.
    Absolute {
        authority: Span,
        path_start: u32,
    },
}

/// RFC 9112 §3.2: origin-form, absolute-form (http/https only), or `*` for OPTIONS.
/// Authority-form is CONNECT only and refused earlier.
fn target_form(t: &[u8], method: Method) -> Result<TargetForm, RequestError> {
    if t.contains(&b'#') {
        return Err(RequestError::Bad("fragment in request target"));
    }
    if t.first() == Some(&b'/') {
        return Ok(TargetForm::Origin);
    }
    if t == b"*" {
        return match method {
            Method::Options => Ok(TargetForm::Asterisk),
            _ => Err(RequestError::Bad("asterisk target outside OPTIONS")),
        };
    }
    let lower_starts = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    let scheme_len = if lower_starts(b"http://") {
        7
    } else if lower_starts(b"https://") {
        8
    } else {
        return Err(RequestError::Bad("invalid request target"));
    };
    let rest = &t[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    if !valid_authority(authority) || authority.is_empty() {
        return Err(RequestError::Bad("invalid authority in request target"));
    }
    if rest[auth_len..].first() != Some(&b'/') {
        // "http://h" or "http://h?q": the path is empty; we need "/" upstream, which the target
        // does not contain. Refuse rather than build a target the client did not send.
        return Err(RequestError::Bad("absolute-form target without a path"));
    }
    Ok(TargetForm::Absolute {
        authority: Span {
            start: scheme_len as u32,
            end: (scheme_len + auth_len) as u32,
        },
        path_start: (scheme_len + auth_len) as u32,
    })
}

/// Exactly one Host on HTTP/1.1 (RFC 9112 §3.2), with a valid authority value.
fn host_field(
    buf: &[u8],
    headers: &[HeaderSpan],
    version: Version,
) -> Result<Option<Span>, RequestError> {
    let mut host = None;
    for h in headers.iter().filter(|h| h.kind == HeaderKind::Host) {
        if host.is_some() {
            return Err(RequestError::Bad("repeated host"));
        }
        if !valid_authority(h.value.get(buf)) {
            return Err(RequestError::Bad("invalid host"));
        }
        host = Some(h.value);
    }
    if host.is_none() && version == Version::Http11 {
        return Err(RequestError::Bad("missing host"));
    }
    Ok(host)
}

/// uri-host [ ":" port ] with reg-name, IPv4 or IP-literal characters; no userinfo, no spaces.
fn valid_authority(a: &[u8]) -> bool {
    if a.first() == Some(&b'[') {
        let Some(end) = a.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner_ok = a[1..end]
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return inner_ok && valid_port(&a[end + 1..], true);
    }
    let (host, port) = match a.iter().rposition(|&b| b == b':') {
        Some(c) => (&a[..c], &a[c..]),
        None => (a, &a[a.len()..]),
    };
    host.iter().all(|&b| HOST_BYTE[usize::from(b)]) && valid_port(port, true)
}

/// Bytes of a reg-name or IPv4 host (RFC 3986 §3.2.2: unreserved, sub-delims, and `%` of
/// pct-encoded), as a table: every request's authority is checked byte by byte.
const HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let others = b"-._~!$&'()*+,;=%";
    let mut j = 0;
    while j < others.len() {
        t[others[j] as usize] = true;
        j += 1;
    }
    t
};

/// "" or ":" DIGITS.
fn valid_port(p: &[u8], allow_empty: bool) -> bool {
    match p.split_first() {
        None => allow_empty,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `Expect: 100-continue` on HTTP/1.1 is honoured; other expectations are refused (417);
/// on HTTP/1.0 the field is ignored (RFC 9110 §10.1.1).
fn expectation(buf: &[u8], headers: &[HeaderSpan], version: Version) -> Result<bool, RequestError> {
    let mut cont = false;
    for h in headers.iter().filter(|h| h.kind == HeaderKind::Expect) {
        if version == Version::Http10 {
            return Ok(false);
        }
        for item in header::list_items(h.value.get(buf)) {
            if item.eq_ignore_ascii_case(b"100-continue") {
                cont = true;
            } else {
                return Err(RequestError::ExpectationFailed);
            }
        }
    }
    Ok(cont)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults as d;

    fn limits() -> Limits {
        Limits {
            header_bytes_max: 1024,
            header_count_max: 8,
            uri_bytes_max: 64,
            body_bytes_max: d::BODY_BYTES_MAX,
            connections_per_shard_max: 10,
            connections_per_ip_max: 0,
            idle_release_connections: 0,
            body_rate_min: None,
        }
    }

    fn parse_str(s: &str) -> Result<Option<RequestHead>, RequestError> {
        let mut h = Vec::new();
        parse(s.as_bytes(), &limits(), &mut h)
    }

    fn ok(s: &str) -> RequestHead {
        parse_str(s).unwrap().unwrap()
    }

    fn bad(s: &str) {
        match parse_str(s) {
            Err(RequestError::Bad(_)) => {}
            other => panic!("expected 400 for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let s = "GET /a/b?x=1 HTTP/1.1\r\nHost: h:80\r\n\r\n";
        let r = ok(s);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target.get(s.as_bytes()), b"/a/b?x=1");
        assert_eq!(r.path.get(s.as_bytes()), b"/a/b");
        assert_eq!(r.authority.unwrap().get(s.as_bytes()), b"h:80");
        assert_eq!(r.body, BodyKind::None);
        assert!(r.keep_alive);
        assert_eq!(r.head_len, s.len());
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(parse_str("GET / HTTP/1.1\r\nHost: h\r\n"), Ok(None));
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(100));
        assert_eq!(parse_str(&long), Err(RequestError::UriTooLong));
        let line_only = format!("GET /{}", "a".repeat(200));
        assert_eq!(parse_str(&line_only), Err(RequestError::UriTooLong));
        let many = format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", "a: b\r\n".repeat(9));
        assert_eq!(parse_str(&many), Err(RequestError::HeadTooLarge));
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nx: {}\r\n", "v".repeat(1100));
        assert_eq!(parse_str(&big), Err(RequestError::HeadTooLarge));
    }

    /// Fuzzer finding (fuzz/regressions/request_head/long-method-split-read): a long method
    /// with a short target was served in one read but refused with 414 when the request line
    /// arrived in two.
    #[test]
    fn long_method_is_not_a_long_target_in_any_split() {
        let s = format!("{} / HTTP/1.1\r\nHost: h\r\n\r\n", "G".repeat(200));
        assert!(ok(&s).head_len == s.len());
        for cut in 0..s.len() {
            let mut h = Vec::new();
            assert_eq!(
                parse(&s.as_bytes()[..cut], &limits(), &mut h),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn http10_keep_alive_rules() {
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        bad(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\n\r\n");
        bad("POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n");
        bad("POST / HTTP/1.1\r\n Host: h\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n");
        bad("GET / HTTP/1.1\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: h/x\r\n\r\n");
        bad("G@T / HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("GET x HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("GET /#f HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("GET * HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("GET  / HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        bad("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n");
        bad("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n");
        bad("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    /// The host byte table: every byte RFC 3986 allows in a reg-name or IPv4 host, and no
    /// other (`[`/`]` and `:` are taken apart before it).
    #[test]
    fn host_bytes() {
        assert!(valid_authority(b"api-v2.example_1.com:8080"));
        assert!(valid_authority(b"a~b!c$d&e'f(g)h*i+j,k;l=m%20"));
        assert!(valid_authority(b"[::1]:443"));
        let allowed: Vec<u8> = (0..=255u8)
            .filter(|&b| valid_authority(&[b'h', b, b'h']))
            .collect();
        let mut expected: Vec<u8> = (b'0'..=b'9')
            .chain(b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .collect();
        expected.extend_from_slice(b"-._~!$&'()*+,;=%");
        expected.sort_unstable();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn special_statuses() {
        assert_eq!(
            parse_str("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(RequestError::MethodNotAllowed)
        );
        assert_eq!(
            parse_str("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
            Err(RequestError::VersionNotSupported)
        );
        assert_eq!(
            parse_str("GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"),
            Err(RequestError::ExpectationFailed)
        );
        let r =
            ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(r.expect_continue);
        assert_eq!(r.body, BodyKind::Length(3));
    }

    #[test]
    fn absolute_form_uses_its_authority() {
        let s = "GET http://Real.example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n";
        let r = ok(s);
        assert_eq!(r.authority.unwrap().get(s.as_bytes()), b"Real.example:8080");
        assert_eq!(r.target.get(s.as_bytes()), b"/p?q");
        assert_eq!(r.path.get(s.as_bytes()), b"/p");
    }

    #[test]
    fn options_asterisk_and_bare_lf() {
        let r = ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Options);
        // A bare LF may end a line (RFC 9112 §2.2); coregate re-serialises with CRLF.
        assert!(ok("GET / HTTP/1.1\nHost: h\n\n").keep_alive);
    }

    #[test]
    fn upgrade_requests() {
        let ws = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\
Upgrade: websocket\r\n\r\n";
        assert!(ok(ws).upgrade);
        // Without the Connection option, over HTTP/1.0, with a body, or to h2c: plain HTTP.
        assert!(!ok("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgrade);
        assert!(!ok("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade);
        assert!(
            !ok("POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\
Upgrade: websocket\r\nContent-Length: 1\r\n\r\nx")
            .upgrade
        );
        assert!(
            !ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n").upgrade
        );
        assert!(
            !ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: \r\n\r\n").upgrade
        );
    }

    #[test]
    fn chunked_request() {
        let r = ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.body, BodyKind::Chunked);
    }
}
