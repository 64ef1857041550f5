//! A shard's pool of client connection buffers. A connection's read buffer, output buffer and
//! head field vectors cost four allocations (about 5.5 KiB) when it opens; with
//! `Connection: close` that is every request. A closed connection gives its set back and the
//! next one takes it, so a shard churning connections allocates none of them. The pool is the
//! shard's own (no lock), keeps only sets at their initial sizes (one that grew for a large
//! head is dropped, as before) and at most `POOLED_MAX` of them.
//!
//! The connection's `Timer` is not pooled here: a monoio timer keeps the waker of the first
//! task that polled it until it fires, so one handed to another task would wake the previous
//! connection's task and never the new one (tests/protection.rs caught an upstream timeout
//! that never fired). The task keeps its timer instead, from client to client (`workers`).

use std::cell::RefCell;

use crate::buf::RecvBuf;
use crate::http::HeaderSpan;

/// Initial read buffer of a client connection; grows up to `limits.header_bytes_max` for heads.
const CLIENT_BUF_BYTES: usize = 4096;
/// Initial output buffer (request and response heads, small bodies).
const OUT_BYTES: usize = 1024;
/// Initial room for the fields of one head.
const FIELDS: usize = 16;
/// Sets kept per shard: enough for a burst of short connections (a client with 64 open at a
/// time reuses 64), little memory idle (about 350 KiB).
const POOLED_MAX: usize = 64;

/// The buffers one client connection uses, reused across its requests and then across
/// connections.
#[derive(Debug)]
pub struct ConnBuffers {
    pub inbuf: RecvBuf,
    pub out: Vec<u8>,
    pub headers: Vec<HeaderSpan>,
    pub resp_headers: Vec<HeaderSpan>,
}

impl ConnBuffers {
    fn new() -> ConnBuffers {
        ConnBuffers {
            inbuf: RecvBuf::with_capacity(CLIENT_BUF_BYTES),
            // Sized for a typical exchange up front: growing from empty cost a chain of
            // reallocs on every new connection (measurable with Connection: close).
            out: Vec::with_capacity(OUT_BYTES),
            headers: Vec::with_capacity(FIELDS),
            resp_headers: Vec::with_capacity(FIELDS),
        }
    }

    /// Still at the sizes a new set has (a set that grew is not kept).
    fn is_initial_size(&self) -> bool {
        self.inbuf.capacity() == CLIENT_BUF_BYTES
            && self.out.capacity() == OUT_BYTES
            && self.headers.capacity() == FIELDS
            && self.resp_headers.capacity() == FIELDS
    }
}

#[derive(Debug, Default)]
pub struct BufferPool {
    free: RefCell<Vec<ConnBuffers>>,
}

impl BufferPool {
    /// A set for a new connection: a pooled one, or a new one.
    pub fn take(&self) -> ConnBuffers {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(ConnBuffers::new)
    }

    /// Give back a closed connection's set. Emptied here; dropped when it grew or the pool
    /// is full.
    pub fn give(&self, mut set: ConnBuffers) {
        if !set.is_initial_size() {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() >= POOLED_MAX {
            return;
        }
        set.inbuf.clear();
        set.out.clear();
        set.headers.clear();
        set.resp_headers.clear();
        free.push(set);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_reused_emptied_and_bounded() {
        let pool = BufferPool::default();
        let mut a = pool.take();
        a.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let out_ptr = a.out.as_ptr();
        pool.give(a);
        assert_eq!(pool.len(), 1);
        let b = pool.take();
        assert_eq!(b.out.as_ptr(), out_ptr, "the pooled set is reused");
        assert!(b.out.is_empty() && b.inbuf.is_empty());
        // A set that grew is not kept.
        let mut grown = b;
        grown.out.reserve(64 * 1024);
        pool.give(grown);
        assert_eq!(pool.len(), 0);
        // At most POOLED_MAX are kept.
        let sets: Vec<_> = (0..POOLED_MAX + 5).map(|_| pool.take()).collect();
        for s in sets {
            pool.give(s);
        }
        assert_eq!(pool.len(), POOLED_MAX);
    }
}
