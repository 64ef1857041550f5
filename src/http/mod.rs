//! HTTP/1.1 on httparse: strict parsing of request and response heads (RFC 9112 framing rules
//! applied on top of httparse's syntax checks), the chunked codec, head serialisation and the
//! pre-rendered answers. Pure code: no I/O here.

pub mod canned;
pub mod chunked;
pub mod header;
pub mod request;
pub mod response;
pub mod write;

pub use header::{HeaderKind, HeaderSpan, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    None,
    /// Content-Length.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Responses only: read until the upstream closes.
    UntilClose,
}
