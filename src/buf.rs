//! `RecvBuf`: one connection's read buffer. Bytes arrive at the end, are consumed from the front,
//! and are only moved (compacted) when the buffer is full. Capacity grows on demand up to a
//! caller-given bound, so an idle connection holds a small buffer and a large head still fits.
//! A buffer may keep headroom: an emptied buffer's next read lands that many bytes in, so that a
//! rewritten head can later be put in front of the body read with it (`prepend`), and the two go
//! out in one write without copying the body.

use std::io;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};

#[derive(Debug, Default)]
pub struct RecvBuf {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
    /// Bytes left unused before an empty buffer's next read.
    headroom: usize,
}

impl RecvBuf {
    pub fn with_capacity(n: usize) -> RecvBuf {
        RecvBuf {
            buf: Vec::with_capacity(n),
            start: 0,
            headroom: 0,
        }
    }

    /// Leave `n` bytes free in front of what an empty buffer reads next (room for `prepend`).
    pub fn with_headroom(mut self, n: usize) -> RecvBuf {
        self.headroom = n.min(self.buf.capacity() / 2);
        self.clear();
        self
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
            self.clear();
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
        let spare = self.spare(capacity_max)?;
        let (res, slice) = r.read(spare).await;
        self.buf = slice.into_inner();
        res
    }

    /// `fill` with a read that `c`'s canceller can cancel. A cancelled read returns what it
    /// received before the cancel took effect, or `ECANCELED`; the buffer is kept either way.
    pub async fn fill_cancelable<R: CancelableAsyncReadRent>(
        &mut self,
        r: &mut R,
        capacity_max: usize,
        c: CancelHandle,
    ) -> io::Result<usize> {
        let spare = self.spare(capacity_max)?;
        let (res, slice) = r.cancelable_read(spare, c).await;
        self.buf = slice.into_inner();
        res
    }

    /// The free room at the end, taken out of `self` for a read (put back with the bytes read).
    fn spare(&mut self, capacity_max: usize) -> io::Result<SliceMut<Vec<u8>>> {
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
        Ok(buf.slice_mut(len..cap))
    }

    /// Put `bytes` in front of the pending bytes, over consumed ones, without moving the pending
    /// ones. False (and nothing changed) if fewer than `bytes.len()` consumed bytes precede them.
    pub fn prepend(&mut self, bytes: &[u8]) -> bool {
        let Some(at) = self.start.checked_sub(bytes.len()) else {
            return false;
        };
        self.buf[at..self.start].copy_from_slice(bytes);
        self.start = at;
        true
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

    /// Forget every pending byte, keeping the capacity (a pooled buffer's reuse) and the
    /// headroom: the bytes before `start` stay, as consumed ones, and are only written again
    /// by `prepend`.
    pub fn clear(&mut self) {
        if self.buf.len() < self.headroom {
            self.buf.resize(self.headroom, 0);
        }
        self.buf.truncate(self.headroom);
        self.start = self.headroom;
    }
}
