//! coregate's patch (see ../README.adoc): `CancelableIo`, a socket whose reads can be made
//! cancellable by its owner while a TLS stream (monoio-rustls) holds it.
//!
//! monoio-rustls reads its socket with plain reads, and a TLS read's future that is dropped
//! takes the stream's read buffer with it (the stream cannot read again). A server waiting for a
//! client's next request needs to give that wait up without losing a byte. With a handle
//! armed (`CancelSlot::arm`), the socket's reads are monoio's cancellable reads: cancelled,
//! the TLS read under way ends with the bytes received before the cancel took effect, or with
//! an error, and the slot tells which (`CancelSlot::disarm`). Unarmed, a read is a plain read.
//!
//! It lives in this crate, not in coregate, because it must be `Split` (a TLS tunnel splits
//! its stream), an unsafe trait, and coregate forbids unsafe code.

use std::{cell::Cell, io, rc::Rc};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, Split},
    BufResult,
};

/// Linux's ECANCELED: what a cancelled read ends with.
const ECANCELED: i32 = 125;

#[derive(Default)]
struct Shared {
    armed: Cell<Option<CancelHandle>>,
    cancelled: Cell<bool>,
}

/// A socket read through `CancelSlot`'s handle when one is armed.
pub struct CancelableIo<IO> {
    io: IO,
    shared: Rc<Shared>,
}

/// Arms and disarms the cancellation of a `CancelableIo`'s reads, from outside the stream that
/// owns it.
#[derive(Clone)]
pub struct CancelSlot(Rc<Shared>);

impl<IO> CancelableIo<IO> {
    /// `io` with plain reads, and the slot that makes them cancellable.
    pub fn new(io: IO) -> (CancelableIo<IO>, CancelSlot) {
        let shared = Rc::new(Shared::default());
        (
            CancelableIo {
                io,
                shared: shared.clone(),
            },
            CancelSlot(shared),
        )
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: std::fmt::Debug> std::fmt::Debug for CancelableIo<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelableIo")
            .field("io", &self.io)
            .finish()
    }
}

impl std::fmt::Debug for CancelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CancelSlot")
    }
}

impl CancelSlot {
    /// From now on, reads are cancellable by `handle`'s canceller.
    pub fn arm(&self, handle: CancelHandle) {
        self.0.cancelled.set(false);
        self.0.armed.set(Some(handle));
    }

    /// Reads are plain again. True if a read ended cancelled while armed.
    pub fn disarm(&self) -> bool {
        self.0.armed.set(None);
        self.0.cancelled.replace(false)
    }
}

impl<IO: CancelableAsyncReadRent> AsyncReadRent for CancelableIo<IO> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let Some(handle) = self.shared.armed.take() else {
            return self.io.read(buf).await;
        };
        self.shared.armed.set(Some(handle.clone()));
        let r = self.io.cancelable_read(buf, handle).await;
        self.note(&r.0);
        r
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let Some(handle) = self.shared.armed.take() else {
            return self.io.readv(buf).await;
        };
        self.shared.armed.set(Some(handle.clone()));
        let r = self.io.cancelable_readv(buf, handle).await;
        self.note(&r.0);
        r
    }
}

impl<IO> CancelableIo<IO> {
    fn note(&self, r: &io::Result<usize>) {
        if matches!(r, Err(e) if e.raw_os_error() == Some(ECANCELED)) {
            self.shared.cancelled.set(true);
        }
    }
}

impl<IO: AsyncWriteRent> AsyncWriteRent for CancelableIo<IO> {
    fn write<T: IoBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.io.write(buf)
    }

    fn writev<T: IoVecBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.io.writev(buf)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.io.flush()
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.io.shutdown()
    }
}

// Safety: the read half touches `shared` and `io`'s reads, the write half only `io`'s writes,
// which `IO: Split` guarantees can run at the same time.
unsafe impl<IO: Split> Split for CancelableIo<IO> {}
