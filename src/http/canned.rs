//! Responses coregate answers itself, rendered once (at config load or first use) so that the hot
//! path only writes prepared bytes: error answers and the routes' `respond` bodies.

use std::sync::LazyLock;

/// A complete response in two renderings: one that keeps the connection, one that closes it.
#[derive(Debug, Clone)]
pub struct StaticResponse {
    pub status: u16,
    keep: Box<[u8]>,
    keep_head: usize,
    close: Box<[u8]>,
    close_head: usize,
}

impl StaticResponse {
    pub fn new(status: u16, content_type: &str, body: &[u8]) -> StaticResponse {
        let (keep, keep_head) = render(status, content_type, body, false);
        let (close, close_head) = render(status, content_type, body, true);
        StaticResponse {
            status,
            keep,
            keep_head,
            close,
            close_head,
        }
    }

    /// Append the response to `out` with `extra` field lines (each `Name: value\r\n`) after
    /// the status line: the one writer of answers coregate gives itself with extra fields
    /// (401 + WWW-Authenticate, 405 + Allow, 429 + Retry-After, CORS, RateLimit-*).
    pub fn write_with(&self, out: &mut Vec<u8>, extra: &[&[u8]], close: bool, head_only: bool) {
        let all = self.bytes(close, head_only);
        let line = all
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(all.len(), |p| p + 2);
        out.extend_from_slice(&all[..line]);
        for e in extra {
            out.extend_from_slice(e);
        }
        out.extend_from_slice(&all[line..]);
    }

    /// Bytes of the body as sent (none for HEAD requests or bodiless statuses).
    pub fn body_len(&self, head_only: bool) -> u64 {
        if head_only {
            0
        } else {
            (self.keep.len() - self.keep_head) as u64
        }
    }

    /// The bytes to write; `head_only` for HEAD requests (same head, no body).
    pub fn bytes(&self, close: bool, head_only: bool) -> &[u8] {
        let (all, head) = if close {
            (&self.close, self.close_head)
        } else {
            (&self.keep, self.keep_head)
        };
        if head_only {
            &all[..head]
        } else {
            all
        }
    }
}

fn render(status: u16, content_type: &str, body: &[u8], close: bool) -> (Box<[u8]>, usize) {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if status_has_body(status) {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let head = out.len();
    if status_has_body(status) {
        out.extend_from_slice(body);
    }
    (out.into_boxed_slice(), head)
}

/// 1xx, 204 and 304 never carry a body (RFC 9110 §6.4.1).
pub fn status_has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// Reason phrases for the statuses coregate emits; others get an empty phrase (allowed by RFC 9112).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The statuses coregate answers on its own when something fails.
const ERROR_STATUSES: [u16; 16] = [
    400, 401, 403, 404, 405, 408, 413, 414, 417, 429, 431, 500, 502, 503, 504, 505,
];

static NO_CONTENT: LazyLock<StaticResponse> =
    LazyLock::new(|| StaticResponse::new(204, "text/plain", b""));

/// The pre-rendered answer a phase gives itself: 204 (CORS preflight) or an error status.
pub fn local(status: u16) -> &'static StaticResponse {
    if status == 204 {
        &NO_CONTENT
    } else {
        error(status)
    }
}

static ERRORS: LazyLock<Vec<StaticResponse>> = LazyLock::new(|| {
    ERROR_STATUSES
        .iter()
        .map(|&s| {
            let body = format!("{s} {}\n", reason(s));
            StaticResponse::new(s, "text/plain", body.as_bytes())
        })
        .collect()
});

/// The pre-rendered answer for an error status. Short, with Content-Length, and never naming an
/// upstream address or any other internal detail.
pub fn error(status: u16) -> &'static StaticResponse {
    let i = ERROR_STATUSES
        .iter()
        .position(|&s| s == status)
        .or_else(|| ERROR_STATUSES.iter().position(|&s| s == 500)) // unlisted: a bug
        .unwrap_or(0);
    &ERRORS[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keep_and_close() {
        let r = StaticResponse::new(200, "text/plain", b"ok");
        assert_eq!(
            r.bytes(false, false),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        );
        assert_eq!(
            r.bytes(true, true),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn extra_fields_follow_the_status_line() {
        let mut out = Vec::new();
        error(429).write_with(&mut out, &[b"Retry-After: 3\r\n", b"X: y\r\n"], false, true);
        assert_eq!(
            out,
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX: y\r\n\
Content-Type: text/plain\r\nContent-Length: 22\r\n\r\n"
        );
    }

    #[test]
    fn no_body_statuses() {
        let r = StaticResponse::new(204, "text/plain", b"ignored");
        assert_eq!(r.bytes(false, false), b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn every_error_status_is_rendered() {
        for s in ERROR_STATUSES {
            assert_eq!(error(s).status, s);
        }
        assert_eq!(error(599).status, 500);
    }
}
