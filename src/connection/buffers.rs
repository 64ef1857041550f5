//! A client connection's buffers: its read buffer, output buffer and head field vectors, four
//! allocations (about 5.5 KiB) when a connection opens; with `Connection: close` that is every
//! request. The connection task keeps its set from client to client (`workers`), so a shard
//! churning connections allocates none of them. Only a set at its initial sizes is kept: one
//! that grew for a large head is replaced by a new one, so a parked task never holds more.
//!
//! The connection's `Timer` is kept by the task the same way. It could not be pooled across
//! tasks: a monoio timer keeps the waker of the first task that polled it until it fires, so
//! one handed to another task would wake the previous connection's task and never the new one
//! (tests/protection.rs caught an upstream timeout that never fired).

use crate::buf::RecvBuf;
use crate::http::HeaderSpan;

/// Initial read buffer of a client connection; grows up to `limits.header_bytes_max` for heads.
const CLIENT_BUF_BYTES: usize = 4096;
/// Initial output buffer (request and response heads, small bodies).
const OUT_BYTES: usize = 1024;
/// Initial room for the fields of one head.
const FIELDS: usize = 16;

/// The buffers one client connection uses, reused across its requests and then, by its task,
/// across connections.
#[derive(Debug)]
pub struct ConnBuffers {
    pub inbuf: RecvBuf,
    pub out: Vec<u8>,
    pub headers: Vec<HeaderSpan>,
    pub resp_headers: Vec<HeaderSpan>,
}

impl ConnBuffers {
    pub fn new() -> ConnBuffers {
        ConnBuffers {
            inbuf: RecvBuf::with_capacity(CLIENT_BUF_BYTES),
            // Sized for a typical exchange up front: growing from empty cost a chain of
            // reallocs on every new connection (measurable with Connection: close).
            out: Vec::with_capacity(OUT_BYTES),
            headers: Vec::with_capacity(FIELDS),
            resp_headers: Vec::with_capacity(FIELDS),
        }
    }

    /// For the task's next connection: this set emptied, or a new one if this one grew.
    pub fn recycle(mut self) -> ConnBuffers {
        if !self.is_initial_size() {
            return ConnBuffers::new();
        }
        self.inbuf.clear();
        self.out.clear();
        self.headers.clear();
        self.resp_headers.clear();
        self
    }

    /// Still at the sizes a new set has (a set that grew is not kept).
    fn is_initial_size(&self) -> bool {
        self.inbuf.capacity() == CLIENT_BUF_BYTES
            && self.out.capacity() == OUT_BYTES
            && self.headers.capacity() == FIELDS
            && self.resp_headers.capacity() == FIELDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_reused_emptied_and_replaced_once_grown() {
        let mut a = ConnBuffers::new();
        a.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let out_ptr = a.out.as_ptr();
        let b = a.recycle();
        assert_eq!(b.out.as_ptr(), out_ptr, "the set is reused");
        assert!(b.out.is_empty() && b.inbuf.is_empty());
        // A set that grew is replaced by one at the initial sizes.
        let mut grown = b;
        grown.out.reserve(64 * 1024);
        let c = grown.recycle();
        assert_eq!(c.out.capacity(), OUT_BYTES);
        assert!(c.is_initial_size());
    }
}
