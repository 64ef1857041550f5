//! What a failed body relay or upstream write means, as a `ProxyError` (and so as a status):
//! request-side failures blame the client or the upstream; response-side ones the upstream or
//! a client that left.

use crate::error::ProxyError;
use crate::relay::RelayError;

pub(super) fn upstream_write_error(e: RelayError) -> ProxyError {
    match e {
        RelayError::WriteTimeout => ProxyError::UpstreamTimeout,
        RelayError::WriteIo(e) => ProxyError::UpstreamIo(e.kind()),
        _ => ProxyError::UpstreamIo(std::io::ErrorKind::Other),
    }
}

/// Failures while relaying the request body (client → upstream).
pub(super) fn request_body_error(e: RelayError) -> ProxyError {
    match e {
        RelayError::ReadIo(_) | RelayError::ReadEof => ProxyError::DownstreamIo,
        RelayError::ReadTimeout => ProxyError::ClientTimeout,
        RelayError::Framing(_) => ProxyError::BadRequest("invalid chunked body"),
        RelayError::TooLarge => ProxyError::BodyTooLarge,
        RelayError::WriteIo(_) | RelayError::WriteTimeout => upstream_write_error(e),
    }
}

/// Failures while relaying the response body (upstream → client).
pub(super) fn response_body_error(e: RelayError) -> ProxyError {
    match e {
        RelayError::ReadIo(e) => ProxyError::UpstreamIo(e.kind()),
        RelayError::ReadEof => ProxyError::UpstreamProtocol("response body cut short"),
        RelayError::ReadTimeout => ProxyError::UpstreamTimeout,
        RelayError::Framing(_) => ProxyError::UpstreamProtocol("invalid chunked body"),
        RelayError::TooLarge => ProxyError::UpstreamProtocol("response body too large"),
        RelayError::WriteIo(_) | RelayError::WriteTimeout => ProxyError::DownstreamIo,
    }
}
