//! Upstream response heads, parsed as strictly as requests: a malformed or ambiguous answer
//! becomes a 502 at the client, never a desynchronised connection.

use std::mem::MaybeUninit;

use super::header::{self, FramingError, FramingSeen, HeaderKind, HeaderSpan, Span};
use super::{BodyKind, Version};
use crate::config::defaults::HEADER_COUNT_LIMIT;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub version: Version,
    pub head_len: usize,
    /// How to read the body from the upstream.
    pub body: BodyKind,
    /// Content-Length as sent, for HEAD and 304 answers that describe a body without sending it.
    pub declared_length: Option<u64>,
    /// The upstream lets us reuse the connection after this response.
    pub reusable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not a valid HTTP/1.x response head (reason for the log).
    Malformed(&'static str),
    /// The head does not fit in the limit.
    TooLarge,
}

/// Parse a response head from `buf`. `head_request`: the request was HEAD (no body follows).
pub fn parse(
    buf: &[u8],
    head_request: bool,
    head_bytes_max: usize,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<ResponseHead>, ResponseError> {
    let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; HEADER_COUNT_LIMIT];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= head_bytes_max => {
            return Err(ResponseError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
        Err(_) => return Err(ResponseError::Malformed("invalid response head")),
    };
    if head_len > head_bytes_max {
        return Err(ResponseError::TooLarge);
    }
    let (Some(status), Some(minor), Some(reason)) = (resp.code, resp.version, resp.reason) else {
        return Err(ResponseError::Malformed("incomplete status line"));
    };
    if !(100..=599).contains(&status) {
        return Err(ResponseError::Malformed("status code out of range"));
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    headers.clear();
    for h in resp.headers.iter() {
        if h.name.is_empty() {
            return Err(ResponseError::Malformed("empty field name"));
        }
        headers.push(HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, h.value),
            kind: HeaderKind::of(h.name.as_bytes()),
        });
    }
    let conn = header::apply_connection(buf, headers);
    let mut reusable = match version {
        Version::Http11 => !conn.close,
        Version::Http10 => conn.keep_alive && !conn.close,
    };
    let seen = match header::framing(buf, headers) {
        Ok(s) => s,
        // TE overrides CL in a response (RFC 9112 §6.3 item 3); the connection is not reused.
        Err(FramingError::LengthAndEncoding) => {
            reusable = false;
            Some(FramingSeen::Chunked)
        }
        Err(FramingError::InvalidLength) => {
            return Err(ResponseError::Malformed("invalid content-length"))
        }
        Err(FramingError::ConflictingLength) => {
            return Err(ResponseError::Malformed("conflicting content-length"))
        }
        Err(FramingError::UnsupportedEncoding) => {
            return Err(ResponseError::Malformed(
                "transfer-encoding other than chunked",
            ))
        }
    };
    let declared_length = match seen {
        Some(FramingSeen::Length(n)) => Some(n),
        _ => None,
    };
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let body = match seen {
        _ if no_body => BodyKind::None,
        Some(FramingSeen::Chunked) => BodyKind::Chunked,
        Some(FramingSeen::Length(0)) => BodyKind::None,
        Some(FramingSeen::Length(n)) => BodyKind::Length(n),
        None => {
            reusable = false;
            BodyKind::UntilClose
        }
    };
    Ok(Some(ResponseHead {
        status,
        reason: Span::of(buf, reason.as_bytes()),
        version,
        head_len,
        body,
        declared_length,
        reusable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, head: bool) -> Result<Option<ResponseHead>, ResponseError> {
        parse(s.as_bytes(), head, 4096, &mut Vec::new())
    }

    #[test]
    fn framings() {
        let r = p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::Length(5));
        assert!(r.reusable);
        let r = p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!((r.body, r.declared_length), (BodyKind::None, Some(5)));
        let r = p("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(r.body, BodyKind::UntilClose);
        assert!(!r.reusable);
        let r = p("HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::None);
        let r = p(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, BodyKind::None);
        let r = p(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, BodyKind::Chunked);
        assert!(!r.reusable);
        let r = p("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!r.reusable);
        let r = p(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!r.reusable);
    }

    #[test]
    fn malformed_answers() {
        assert!(p(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(p("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).is_err());
        assert!(p("garbage\r\n\r\n", false).is_err());
        assert!(p("HTTP/1.1 999 X\r\n\r\n", false).is_err());
        assert!(p("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", false).is_err());
        assert_eq!(p("HTTP/1.1 200 OK\r\n", false), Ok(None));
    }
}
