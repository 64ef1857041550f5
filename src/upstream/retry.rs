//! Retry rules of the attempt loop (`proxy::exchange`): how an attempt failed, whether that
//! failure may move the request to another server, and the small rewrite a move needs.
//!
//! A connect failure sent nothing, so any request may move (nginx does the same). A reset or
//! close before any response byte may have reached the application, so only idempotent methods
//! move, unless the route sets `retry_non_idempotent`, and only when the whole request is
//! still in hand. Anything later (a timeout, an invalid answer, a 5xx) is final.

use crate::error::ProxyError;
use crate::http::request::Method;

/// How one attempt on one server failed.
#[derive(Debug)]
pub enum Failure {
    /// Could not connect: nothing was sent.
    Connect(ProxyError),
    /// The request went out, and the connection failed before any response byte.
    /// `reused`: on a pooled connection, which servers close when idle, so no fault of theirs.
    Unanswered { error: ProxyError, reused: bool },
    /// Anything else: answered to the client as it is.
    Final(ProxyError),
}

impl Failure {
    /// Counts against the server for outlier detection.
    pub fn server_fault(&self) -> bool {
        match self {
            Failure::Connect(_) => true,
            Failure::Unanswered { reused, .. } => !reused,
            Failure::Final(e) => matches!(
                e,
                ProxyError::UpstreamTimeout
                    | ProxyError::UpstreamProtocol(_)
                    | ProxyError::UpstreamIo(_)
                    | ProxyError::UpstreamConnect(_)
                    | ProxyError::UpstreamConnectTimeout
            ),
        }
    }

    /// May move to another server. `resendable`: the whole request is still in hand and its
    /// method (or route) allows sending it twice.
    pub fn may_move(&self, resendable: bool) -> bool {
        match self {
            Failure::Connect(_) => true,
            Failure::Unanswered { .. } => resendable,
            Failure::Final(_) => false,
        }
    }

    pub fn into_error(self) -> ProxyError {
        match self {
            Failure::Connect(e) | Failure::Unanswered { error: e, .. } | Failure::Final(e) => e,
        }
    }
}

/// Safe to send twice (RFC 9110 §9.2.2).
pub fn idempotent(m: Method) -> bool {
    match m {
        Method::Get
        | Method::Head
        | Method::Put
        | Method::Delete
        | Method::Options
        | Method::Trace => true,
        Method::Post | Method::Patch | Method::Connect | Method::Other => false,
    }
}

/// For a request whose Host coregate filled in with the server's address (an HTTP/1.0 client
/// sent none): name the new server instead. `out` starts with the head coregate wrote:
/// request line, then `Host: OLD`. Leaves `out` alone if it does not.
pub fn retarget_host(out: &mut Vec<u8>, old: &[u8], new: &[u8]) {
    let Some(eol) = out.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let start = eol + b"\r\nHost: ".len();
    let end = start + old.len();
    if out.get(eol..start) == Some(&b"\r\nHost: "[..])
        && out.get(start..end) == Some(old)
        && out.get(end..end + 2) == Some(&b"\r\n"[..])
    {
        out.splice(start..end, new.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_retargeted_only_when_it_is_ours() {
        let mut out = b"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\nVia: x\r\n\r\nbody".to_vec();
        retarget_host(&mut out, b"10.0.0.1:80", b"backend-b:8080");
        assert_eq!(
            &out[..],
            b"GET / HTTP/1.1\r\nHost: backend-b:8080\r\nVia: x\r\n\r\nbody"
        );
        let before = out.clone();
        retarget_host(&mut out, b"10.0.0.1:80", b"z:1");
        assert_eq!(out, before);
    }

    #[test]
    fn what_moves() {
        let connect = Failure::Connect(ProxyError::UpstreamConnectTimeout);
        assert!(connect.may_move(false) && connect.server_fault());
        let reset = Failure::Unanswered {
            error: ProxyError::UpstreamProtocol("closed before responding"),
            reused: false,
        };
        assert!(reset.may_move(true) && !reset.may_move(false) && reset.server_fault());
        let stale = Failure::Unanswered {
            error: ProxyError::UpstreamProtocol("closed before responding"),
            reused: true,
        };
        assert!(!stale.server_fault());
        let late = Failure::Final(ProxyError::UpstreamTimeout);
        assert!(!late.may_move(true) && late.server_fault());
        assert!(!Failure::Final(ProxyError::DownstreamIo).server_fault());
        assert!(idempotent(Method::Put) && !idempotent(Method::Post));
    }
}
