//! `RecvBuf`: one connection's read buffer. Bytes arrive at the end, are consumed from the front,
//! and are only moved (compacted) when the buffer is full. Capacity grows on demand up to a
//! caller-given bound, so an idle connection holds a small buffer and a large head still fits.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

#[derive(Debug, Default)]
pub struct RecvBuf {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
}

impl RecvBuf {
    pub fn with_capacity(n: usize) -> RecvBuf {
        RecvBuf {
            buf: Vec::with_capacity(n),
            start: 0,
        }
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Drop `n` pending bytes from the front.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len(), "consume past the pending bytes");
        self.start += n.min(self.len());
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Read once from `r`, appending. Returns the bytes read (0 = end of stream).
    /// The buffer grows (doubling) up to `capacity_max`; reading into a full buffer at its
    /// maximum is an error the caller should have prevented by consuming.
    pub async fn fill<R: AsyncReadRent>(
        &mut self,
        r: &mut R,
        capacity_max: usize,
    ) -> io::Result<usize> {
        if self.buf.len() == self.buf.capacity() {
            if self.start > 0 {
                self.buf.copy_within(self.start.., 0);
                self.buf.truncate(self.buf.len() - self.start);
                self.start = 0;
            }
            if self.buf.len() == self.buf.capacity() {
                let cap = self.buf.capacity();
                if cap >= capacity_max {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "read buffer full",
                    ));
                }
                let target = (cap * 2).clamp(4096, capacity_max);
                self.buf.reserve_exact(target - self.buf.len());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = r.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Write the first `n` pending bytes to `w` without copying them, then consume them.
    pub async fn write_front<W: AsyncWriteRent>(&mut self, w: &mut W, n: usize) -> io::Result<()> {
        debug_assert!(n <= self.len());
        let buf = std::mem::take(&mut self.buf);
        let (start, end) = (self.start, self.start + n);
        let (res, slice) = w
            .write_all(monoio::buf::IoBuf::slice(buf, start..end))
            .await;
        self.buf = slice.into_inner();
        res?;
        self.consume(n);
        Ok(())
    }

    /// Forget every pending byte, keeping the capacity (a pooled buffer's reuse).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}
