//! `Metered`: a client stream that counts the bytes it reads and writes into its listener's
//! per-shard counters as they pass (plain `Cell`s: the connection and the counters belong to
//! one shard). It dereferences to the stream it wraps.

use std::io;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent};
use monoio::BufResult;

use super::ListenerStats;

#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    stats: Rc<ListenerStats>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, stats: Rc<ListenerStats>) -> Metered<S> {
        Metered { inner, stats }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Count bytes moved past this wrapper (a tunnel takes the inner stream).
    pub fn count(&self, received: u64, sent: u64) {
        self.stats.c.received.add(received);
        self.stats.c.sent.add(sent);
    }
}

impl<S> Deref for Metered<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S> DerefMut for Metered<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

fn count<T>(r: &BufResult<usize, T>, c: &super::Counter) {
    if let (Ok(n), _) = r {
        c.add(*n as u64);
    }
}

impl<S: AsyncReadRent> AsyncReadRent for Metered<S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = self.inner.read(buf).await;
        count(&r, &self.stats.c.received);
        r
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = self.inner.readv(buf).await;
        count(&r, &self.stats.c.received);
        r
    }
}

impl<S: CancelableAsyncReadRent> CancelableAsyncReadRent for Metered<S> {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let r = self.inner.cancelable_read(buf, c).await;
        count(&r, &self.stats.c.received);
        r
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let r = self.inner.cancelable_readv(buf, c).await;
        count(&r, &self.stats.c.received);
        r
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for Metered<S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = self.inner.write(buf).await;
        count(&r, &self.stats.c.sent);
        r
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = self.inner.writev(buf).await;
        count(&r, &self.stats.c.sent);
        r
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}
