//! Serialise heads for the next hop. Never forwards client or upstream bytes raw: the start line
//! and every field are written again, hop-by-hop fields are dropped, and exactly one framing
//! field of our own is added (RFC 9110 §7.6.1, RFC 9112 §6). `FieldEdits` is the one mechanism
//! for changing fields on the way (route transforms, claims forwarded, CORS and RateLimit-*
//! fields, hiding Server…): drop fields by name, then append finished field lines.

use super::header::{HeaderKind, HeaderSpan};
use super::request::RequestHead;
use super::response::ResponseHead;
use super::Version;

/// Our pseudonym in Via.
const VIA_NAME: &[u8] = b"coregate";

/// Framing of a body we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFraming {
    /// No body and no length field.
    None,
    /// `Content-Length: n` (also used for HEAD/304 answers that only describe a body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Close-delimited (HTTP/1.0 clients only): no framing field.
    Close,
}

/// Field changes for one head: names to drop (lower-case; compared case-insensitively), and
/// finished `Name: value\r\n` lines added after the message's own fields. Applied after
/// hop-by-hop removal and before our framing field, so edits can neither remove nor fake
/// framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldEdits<'a> {
    pub remove: &'a [Box<[u8]>],
    pub extra: &'a [u8],
    /// The body is re-encoded (compression): a strong `ETag` becomes weak (`W/"…"`), as the
    /// bytes are no longer the origin's.
    pub weaken_etag: bool,
}

impl FieldEdits<'_> {
    fn drops(&self, name: &[u8]) -> bool {
        self.remove.iter().any(|r| name.eq_ignore_ascii_case(r))
    }
}

/// Per-connection facts added to forwarded requests.
pub struct ForwardInfo<'a> {
    /// Client address as text, for X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// "http" or "https".
    pub proto: &'static [u8],
    /// Host to send when the client sent none (HTTP/1.0).
    pub default_host: &'a [u8],
    /// Request-target to send instead of the client's (a route rewrite).
    pub target: Option<&'a [u8]>,
    pub edits: FieldEdits<'a>,
}

/// Upstream request head: `buf` is the client's read buffer the head was parsed from.
pub fn request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    headers: &[HeaderSpan],
    info: &ForwardInfo<'_>,
    framing: OutFraming,
) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    out.extend_from_slice(info.target.unwrap_or_else(|| head.target.get(buf)));
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let host = head.authority.map_or(info.default_host, |a| a.get(buf));
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    copy_fields(out, buf, headers, &info.edits);

    out.extend_from_slice(b"X-Forwarded-For: ");
    if join_values(out, buf, headers, HeaderKind::XForwardedFor) {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(info.client_ip);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(info.proto);
    if let Some(a) = head.authority {
        out.extend_from_slice(b"\r\nX-Forwarded-Host: ");
        out.extend_from_slice(a.get(buf));
    }
    out.extend_from_slice(b"\r\n");
    via(out, buf, headers, head.version);
    out.extend_from_slice(info.edits.extra);
    if head.upgrade {
        upgrade_fields(out, buf, headers);
    }
    framing_field(out, framing);
    out.extend_from_slice(b"\r\n");
}

/// The client's `101 Switching Protocols` head: the upstream's fields (edits applied), Via,
/// coregate's extra fields, and the upgrade fields themselves (hop-by-hop, so written here).
pub fn switching_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    headers: &[HeaderSpan],
    extra: &[u8],
    edits: &FieldEdits<'_>,
) {
    out.extend_from_slice(b"HTTP/1.1 101 ");
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");
    copy_fields(out, buf, headers, edits);
    via(out, buf, headers, head.version);
    out.extend_from_slice(edits.extra);
    out.extend_from_slice(extra);
    upgrade_fields(out, buf, headers);
    out.extend_from_slice(b"\r\n");
}

/// Every `Upgrade` field as received, then `Connection: upgrade`.
fn upgrade_fields(out: &mut Vec<u8>, buf: &[u8], headers: &[HeaderSpan]) {
    for h in headers
        .iter()
        .filter(|h| super::request::is_upgrade(buf, h))
    {
        field(out, b"Upgrade", h.value.get(buf));
    }
    out.extend_from_slice(b"Connection: upgrade\r\n");
}

/// Client response head. `close`: this is the last response on the connection. `extra`:
/// field lines coregate adds (each ending in CRLF, e.g. a sticky-session `Set-Cookie`,
/// `Content-Encoding`, `X-Cache`).
#[allow(clippy::too_many_arguments)]
pub fn response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    headers: &[HeaderSpan],
    framing: OutFraming,
    close: bool,
    client_version: Version,
    extra: &[&[u8]],
    edits: &FieldEdits<'_>,
) {
    status_line(out, buf, head);
    response_fields(out, buf, head, headers, edits);
    out.extend_from_slice(edits.extra);
    for e in extra {
        out.extend_from_slice(e);
    }
    framing_field(out, framing);
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `HTTP/1.1 <status> <reason>` of an upstream response.
pub fn status_line(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(head.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");
}

/// The upstream response's end-to-end fields as a client gets them (edits' removals applied,
/// `Via` with our hop), without `edits.extra`, framing or `Connection`: the part of a head
/// the response cache stores.
pub fn response_fields(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    headers: &[HeaderSpan],
    edits: &FieldEdits<'_>,
) {
    copy_fields(out, buf, headers, edits);
    // Forwarded as-is: X-Forwarded-* mean nothing in a response.
    for kind in [
        HeaderKind::XForwardedFor,
        HeaderKind::XForwardedHost,
        HeaderKind::XForwardedProto,
        HeaderKind::Host,
        HeaderKind::Expect,
    ] {
        for h in headers.iter().filter(|h| h.kind == kind) {
            field(out, h.name.get(buf), h.value.get(buf));
        }
    }
    via(out, buf, headers, head.version);
}

/// Every end-to-end field (kind `Other`) that `edits` does not drop, in order.
fn copy_fields(out: &mut Vec<u8>, buf: &[u8], headers: &[HeaderSpan], edits: &FieldEdits<'_>) {
    for h in headers.iter().filter(|h| h.kind == HeaderKind::Other) {
        let name = h.name.get(buf);
        if !edits.remove.is_empty() && edits.drops(name) {
            continue;
        }
        let value = h.value.get(buf);
        if edits.weaken_etag && name.eq_ignore_ascii_case(b"etag") && !value.starts_with(b"W/") {
            out.extend_from_slice(name);
            out.extend_from_slice(b": W/");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        } else {
            field(out, name, h.value.get(buf));
        }
    }
}

#[inline]
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Append the values of every field of `kind`, comma-joined; true if there was any.
fn join_values(out: &mut Vec<u8>, buf: &[u8], headers: &[HeaderSpan], kind: HeaderKind) -> bool {
    let mut any = false;
    for h in headers.iter().filter(|h| h.kind == kind) {
        let v = h.value.get(buf);
        if v.is_empty() {
            continue;
        }
        if any {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(v);
        any = true;
    }
    any
}

/// `Via` with our hop appended (RFC 9110 §7.6.3); `received` is the version we received.
fn via(out: &mut Vec<u8>, buf: &[u8], headers: &[HeaderSpan], received: Version) {
    out.extend_from_slice(b"Via: ");
    if join_values(out, buf, headers, HeaderKind::Via) {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(match received {
        Version::Http10 => b"1.0 ",
        Version::Http11 => b"1.1 ",
    });
    out.extend_from_slice(VIA_NAME);
    out.extend_from_slice(b"\r\n");
}

fn framing_field(out: &mut Vec<u8>, framing: OutFraming) {
    match framing {
        OutFraming::None | OutFraming::Close => {}
        OutFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        OutFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults as d;
    use crate::config::Limits;
    use crate::http::{request, response};

    fn limits() -> Limits {
        Limits {
            header_bytes_max: d::HEADER_BYTES_MAX,
            header_count_max: d::HEADER_COUNT_MAX,
            uri_bytes_max: d::URI_BYTES_MAX,
            body_bytes_max: d::BODY_BYTES_MAX,
            connections_per_shard_max: 1,
            connections_per_ip_max: 0,
            idle_release_connections: 0,
            body_rate_min: None,
        }
    }

    #[test]
    fn request_is_rewritten() {
        let raw = b"GET /p?q HTTP/1.1\r\nhost: ex.com\r\nConnection: keep-alive, X-Hop\r\n\
X-Hop: secret\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\n\
Upgrade: h2c\r\nProxy-Authorization: x\r\nAccept: */*\r\nVia: 1.1 edge\r\n\r\n";
        let mut h = Vec::new();
        let head = request::parse(raw, &limits(), &mut h).unwrap().unwrap();
        let mut out = Vec::new();
        let info = ForwardInfo {
            client_ip: b"10.0.0.1",
            proto: b"http",
            default_host: b"up",
            target: None,
            edits: FieldEdits::default(),
        };
        request_head(&mut out, raw, &head, &h, &info, OutFraming::None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n\
X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\n\
Via: 1.1 edge, 1.1 coregate\r\n\r\n"
        );
    }

    #[test]
    fn response_is_rewritten() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\
Server: s\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut h = Vec::new();
        let head = response::parse(raw, false, 4096, &mut h).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(
            &mut out,
            raw,
            &head,
            &h,
            OutFraming::Chunked,
            true,
            Version::Http11,
            &[b"Set-Cookie: cg=1\r\n"],
            &FieldEdits::default(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: s\r\nVia: 1.1 coregate\r\nSet-Cookie: cg=1\r\n\
Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn edits_drop_and_add_fields_but_never_framing() {
        let raw = b"GET /a?q HTTP/1.1\r\nHost: h\r\nX-User: forged\r\nAccept: */*\r\n\
Content-Length: 0\r\n\r\n";
        let mut h = Vec::new();
        let head = request::parse(raw, &limits(), &mut h).unwrap().unwrap();
        let remove: Vec<Box<[u8]>> =
            vec![b"x-user".to_vec().into(), b"content-length".to_vec().into()];
        let info = ForwardInfo {
            client_ip: b"10.0.0.1",
            proto: b"http",
            default_host: b"up",
            target: Some(b"/b?q"),
            edits: FieldEdits {
                remove: &remove,
                extra: b"X-User: alice\r\n",
                weaken_etag: false,
            },
        };
        let mut out = Vec::new();
        request_head(&mut out, raw, &head, &h, &info, OutFraming::Length(0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /b?q HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\
X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nVia: 1.1 coregate\r\nX-User: alice\r\n\
Content-Length: 0\r\n\r\n"
        );
    }
}
