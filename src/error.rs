//! `ProxyError`: everything that can end an exchange, grouped by where it came from, and the one
//! mapping from error to status and connection fate (STYLE.md §2.7). Matches are exhaustive on
//! purpose: a new variant must decide both.

use std::io;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProxyError {
    // --- downstream (the client) ---
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("request target too long")]
    UriTooLong,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("expectation failed")]
    ExpectationFailed,
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("client too slow sending the request")]
    ClientTimeout,
    #[error("client connection failed")]
    DownstreamIo,

    // --- routing and balancing ---
    #[error("no route")]
    RouteNotFound,
    #[error("no server available")]
    NoServer,

    // --- upstream ---
    #[error("upstream connect failed: {0}")]
    UpstreamConnect(io::ErrorKind),
    #[error("upstream connect timed out")]
    UpstreamConnectTimeout,
    #[error("upstream TLS handshake failed")]
    UpstreamTls,
    #[error("upstream response timed out")]
    UpstreamTimeout,
    #[error("upstream sent an invalid response: {0}")]
    UpstreamProtocol(&'static str),
    #[error("upstream connection failed: {0}")]
    UpstreamIo(io::ErrorKind),
}

impl ProxyError {
    /// The status to answer with; `None`: write nothing (the client is gone).
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            ProxyError::BadRequest(_) => 400,
            ProxyError::UriTooLong => 414,
            ProxyError::HeadTooLarge => 431,
            ProxyError::BodyTooLarge => 413,
            ProxyError::MethodNotAllowed => 405,
            ProxyError::ExpectationFailed => 417,
            ProxyError::VersionNotSupported => 505,
            ProxyError::ClientTimeout => 408,
            ProxyError::DownstreamIo => return None,
            ProxyError::RouteNotFound => 404,
            ProxyError::NoServer => 503,
            ProxyError::UpstreamConnect(_) => 502,
            ProxyError::UpstreamConnectTimeout => 502,
            ProxyError::UpstreamTls => 502,
            ProxyError::UpstreamTimeout => 504,
            ProxyError::UpstreamProtocol(_) => 502,
            ProxyError::UpstreamIo(_) => 502,
        })
    }

    /// Whether the client connection may carry another request after this answer (it also
    /// needs the request body to have been read in full; the connection checks that).
    pub fn keep_alive(&self) -> bool {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::UriTooLong
            | ProxyError::HeadTooLarge
            | ProxyError::BodyTooLarge
            | ProxyError::MethodNotAllowed
            | ProxyError::ExpectationFailed
            | ProxyError::VersionNotSupported
            | ProxyError::ClientTimeout
            | ProxyError::DownstreamIo => false,
            ProxyError::RouteNotFound
            | ProxyError::NoServer
            | ProxyError::UpstreamConnect(_)
            | ProxyError::UpstreamConnectTimeout
            | ProxyError::UpstreamTls
            | ProxyError::UpstreamTimeout
            | ProxyError::UpstreamProtocol(_)
            | ProxyError::UpstreamIo(_) => true,
        }
    }
}

impl From<crate::http::request::RequestError> for ProxyError {
    fn from(e: crate::http::request::RequestError) -> Self {
        use crate::http::request::RequestError as R;
        match e {
            R::Bad(why) => ProxyError::BadRequest(why),
            R::UriTooLong => ProxyError::UriTooLong,
            R::HeadTooLarge => ProxyError::HeadTooLarge,
            R::MethodNotAllowed => ProxyError::MethodNotAllowed,
            R::ExpectationFailed => ProxyError::ExpectationFailed,
            R::VersionNotSupported => ProxyError::VersionNotSupported,
        }
    }
}
