//! Header fields as spans into the read buffer (no copies), classified once so that forwarding
//! decides per field with a match, and the field-level rules shared by requests and responses:
//! Connection tokens, Content-Length lists and Transfer-Encoding lists.

/// A byte range of the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// Span of `part`, which must be a sub-slice of `base`.
    pub fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
        debug_assert!(start + part.len() <= base.len(), "span outside its buffer");
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What a field means to a proxy. Everything but `Other` is handled by coregate, not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization.
    HopByHop,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Via,
    /// Named by a Connection option: removed like a hop-by-hop field.
    Listed,
}

#[derive(Debug, Clone, Copy)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

impl HeaderKind {
    pub fn of(name: &[u8]) -> HeaderKind {
        let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            2 if eq("te") => HeaderKind::HopByHop,
            3 if eq("via") => HeaderKind::Via,
            4 if eq("host") => HeaderKind::Host,
            6 if eq("expect") => HeaderKind::Expect,
            7 if eq("trailer") => HeaderKind::HopByHop,
            7 if eq("upgrade") => HeaderKind::HopByHop,
            10 if eq("connection") => HeaderKind::Connection,
            10 if eq("keep-alive") => HeaderKind::HopByHop,
            14 if eq("content-length") => HeaderKind::ContentLength,
            15 if eq("x-forwarded-for") => HeaderKind::XForwardedFor,
            16 if eq("x-forwarded-host") => HeaderKind::XForwardedHost,
            16 if eq("proxy-connection") => HeaderKind::HopByHop,
            17 if eq("transfer-encoding") => HeaderKind::TransferEncoding,
            17 if eq("x-forwarded-proto") => HeaderKind::XForwardedProto,
            18 if eq("proxy-authenticate") => HeaderKind::HopByHop,
            19 if eq("proxy-authorization") => HeaderKind::HopByHop,
            _ => HeaderKind::Other,
        }
    }
}

/// Items of a comma-separated list field (RFC 9110 §5.6.1), OWS trimmed, empty items skipped.
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').filter_map(|item| {
        let item = item.trim_ascii();
        (!item.is_empty()).then_some(item)
    })
}

/// Options of the Connection fields that matter to a proxy.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

/// Read every Connection field, mark the fields it names as `Listed`, and return its options.
/// A field named in Connection is never forwarded, whatever its name (RFC 9110 §7.6.1).
pub fn apply_connection(buf: &[u8], headers: &mut [HeaderSpan]) -> ConnectionOptions {
    let mut opts = ConnectionOptions::default();
    for i in 0..headers.len() {
        if headers[i].kind != HeaderKind::Connection {
            continue;
        }
        let value = headers[i].value.get(buf);
        for token in list_items(value) {
            if token.eq_ignore_ascii_case(b"close") {
                opts.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                // The field it names is hop-by-hop already: nothing to mark (most responses
                // carry this one, so the scan below is skipped on the common path).
                opts.keep_alive = true;
                continue;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                opts.upgrade = true;
                continue;
            }
            for h in headers.iter_mut() {
                if h.kind == HeaderKind::Other && h.name.get(buf).eq_ignore_ascii_case(token) {
                    h.kind = HeaderKind::Listed;
                }
            }
        }
    }
    opts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A Content-Length member that is not 1*DIGIT, or overflows u64.
    InvalidLength,
    /// Content-Length values that differ.
    ConflictingLength,
    /// Transfer-Encoding other than exactly `chunked`.
    UnsupportedEncoding,
    /// Both Content-Length and Transfer-Encoding.
    LengthAndEncoding,
}

/// Decide the body framing from the CL and TE fields: `Ok(None)` when neither is present.
/// Strict by design (RFC 9112 §6.3): every CL member must be the same plain decimal, TE must
/// be exactly `chunked` (empty list members ignored), and both together are refused.
pub fn framing(buf: &[u8], headers: &[HeaderSpan]) -> Result<Option<FramingSeen>, FramingError> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_items = 0usize;
    for h in headers {
        match h.kind {
            HeaderKind::ContentLength => {
                let value = h.value.get(buf);
                // An empty value (or only commas) is invalid, not absent (CVE-2023-40225).
                let mut any = false;
                for item in value.split(|&b| b == b',') {
                    let n = parse_decimal(item.trim_ascii()).ok_or(FramingError::InvalidLength)?;
                    any = true;
                    match length {
                        Some(prev) if prev != n => return Err(FramingError::ConflictingLength),
                        _ => length = Some(n),
                    }
                }
                if !any {
                    return Err(FramingError::InvalidLength);
                }
            }
            HeaderKind::TransferEncoding => {
                let value = h.value.get(buf);
                for item in list_items(value) {
                    te_items += 1;
                    chunked = item.eq_ignore_ascii_case(b"chunked");
                }
                if list_items(value).next().is_none() {
                    // "Transfer-Encoding:" with nothing: no coding is not a valid TE value.
                    return Err(FramingError::UnsupportedEncoding);
                }
            }
            _ => {}
        }
    }
    if te_items > 0 {
        if length.is_some() {
            return Err(FramingError::LengthAndEncoding);
        }
        if te_items != 1 || !chunked {
            return Err(FramingError::UnsupportedEncoding);
        }
        return Ok(Some(FramingSeen::Chunked));
    }
    Ok(length.map(FramingSeen::Length))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingSeen {
    Length(u64),
    Chunked,
}

/// `1*DIGIT` into u64 with overflow checks; no sign, no spaces, no hex.
pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(buf: &[u8]) -> Vec<HeaderSpan> {
        // "name: value" lines separated by '\n'
        let mut out = Vec::new();
        let mut pos = 0;
        for line in buf.split(|&b| b == b'\n') {
            let colon = line.iter().position(|&b| b == b':').unwrap();
            let name = Span {
                start: pos as u32,
                end: (pos + colon) as u32,
            };
            let mut vs = pos + colon + 1;
            while buf.get(vs) == Some(&b' ') {
                vs += 1;
            }
            let value = Span {
                start: vs as u32,
                end: (pos + line.len()) as u32,
            };
            out.push(HeaderSpan {
                name,
                value,
                kind: HeaderKind::of(name.get(buf)),
            });
            pos += line.len() + 1;
        }
        out
    }

    fn frame(text: &str) -> Result<Option<FramingSeen>, FramingError> {
        framing(text.as_bytes(), &spans(text.as_bytes()))
    }

    #[test]
    fn content_length_rules() {
        use FramingError::*;
        assert_eq!(frame("content-length: 5"), Ok(Some(FramingSeen::Length(5))));
        assert_eq!(
            frame("content-length: 5, 5\nContent-Length: 5"),
            Ok(Some(FramingSeen::Length(5)))
        );
        assert_eq!(
            frame("content-length: 5\ncontent-length: 6"),
            Err(ConflictingLength)
        );
        assert_eq!(frame("content-length: "), Err(InvalidLength));
        assert_eq!(frame("content-length: +5"), Err(InvalidLength));
        assert_eq!(frame("content-length: 0x5"), Err(InvalidLength));
        assert_eq!(frame("content-length: 5,"), Err(InvalidLength));
        assert_eq!(
            frame("content-length: 18446744073709551616"),
            Err(InvalidLength)
        );
        assert_eq!(
            frame("content-length: 18446744073709551615"),
            Ok(Some(FramingSeen::Length(u64::MAX)))
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        use FramingError::*;
        assert_eq!(
            frame("transfer-encoding: chunked"),
            Ok(Some(FramingSeen::Chunked))
        );
        assert_eq!(
            frame("Transfer-Encoding: CHUNKED"),
            Ok(Some(FramingSeen::Chunked))
        );
        assert_eq!(
            frame("transfer-encoding: , chunked"),
            Ok(Some(FramingSeen::Chunked))
        );
        assert_eq!(
            frame("transfer-encoding: chunked, identity"),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            frame("transfer-encoding: gzip, chunked"),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            frame("transfer-encoding: chunked, chunked"),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            frame("transfer-encoding: chunked\ntransfer-encoding: chunked"),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            frame("transfer-encoding: xchunked"),
            Err(UnsupportedEncoding)
        );
        assert_eq!(frame("transfer-encoding: "), Err(UnsupportedEncoding));
        assert_eq!(
            frame("transfer-encoding: chunked\ncontent-length: 3"),
            Err(LengthAndEncoding)
        );
    }

    #[test]
    fn connection_marks_listed_fields() {
        let text = b"connection: close, X-Secret\nx-secret: 1\nx-other: 2";
        let mut h = spans(text);
        let opts = apply_connection(text, &mut h);
        assert!(opts.close && !opts.keep_alive);
        assert_eq!(h[1].kind, HeaderKind::Listed);
        assert_eq!(h[2].kind, HeaderKind::Other);
    }

    #[test]
    fn keep_alive_and_upgrade_options_leave_other_fields_alone() {
        let text = b"connection: Keep-Alive, upgrade, x-gone
keep-alive: timeout=5
upgrade: websocket
x-gone: 1
x-kept: 2";
        let mut h = spans(text);
        let opts = apply_connection(text, &mut h);
        assert!(opts.keep_alive && opts.upgrade && !opts.close);
        assert_eq!(h[1].kind, HeaderKind::HopByHop);
        assert_eq!(h[2].kind, HeaderKind::HopByHop);
        assert_eq!(h[3].kind, HeaderKind::Listed);
        assert_eq!(h[4].kind, HeaderKind::Other);
    }
}
