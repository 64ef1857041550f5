//! `Stream`: a byte stream to a client or an upstream. An enum, not a generic, so that one
//! compiled copy of the connection and relay code serves every transport; transports are
//! variants, dispatched with a match per I/O call.
//!
//! TLS caveat (research/stack.md P3): after a timeout cancels a pending TLS read or write,
//! monoio-rustls panics on the next operation. A TLS stream whose operation was cancelled is
//! therefore poisoned: every later call fails with an error instead, and the connection closes.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

pub type ServerTls = monoio_rustls::ServerTlsStream<TcpStream>;

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    /// Boxed: the rustls state is large and most connections are plain.
    Tls(Box<TlsConn>),
}

#[derive(Debug)]
pub struct TlsConn {
    stream: ServerTls,
    /// An operation is under way; if its future is dropped this stays set (poisoned).
    busy: bool,
}

impl Stream {
    pub fn tls(stream: ServerTls) -> Stream {
        Stream::Tls(Box::new(TlsConn {
            stream,
            busy: false,
        }))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

fn poisoned() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "TLS stream unusable after a cancelled operation",
    )
}

/// Run one operation on a TLS connection, refusing if an earlier one was cancelled.
macro_rules! tls_op {
    ($t:expr, $op:expr, $buf:expr) => {{
        if $t.busy {
            return (Err(poisoned()), $buf);
        }
        $t.busy = true;
        let r = $op.await;
        $t.busy = false;
        r
    }};
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Tls(t) => tls_op!(t, t.stream.read(buf), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.readv(buf).await,
            Stream::Tls(t) => tls_op!(t, t.stream.readv(buf), buf),
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.write(buf).await,
            Stream::Tls(t) => tls_op!(t, t.stream.write(buf), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.writev(buf).await,
            Stream::Tls(t) => tls_op!(t, t.stream.writev(buf), buf),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush().await,
            Stream::Tls(t) if t.busy => Err(poisoned()),
            Stream::Tls(t) => t.stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Tls(t) if t.busy => Err(poisoned()),
            Stream::Tls(t) => t.stream.shutdown().await,
        }
    }
}
