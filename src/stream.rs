//! `Stream`: a byte stream to a client or an upstream. An enum, not a generic, so that one
//! compiled copy of the connection and relay code serves every transport; transports are
//! variants, dispatched with a match per I/O call.
//!
//! `into_split` turns a stream into a read half and a write half that can be driven at once
//! (the two directions of an upgraded tunnel), by monoio's and monoio-rustls's own split.
//!
//! The TLS operations' futures are boxed. monoio-rustls's are 400–720 bytes; inline, they
//! would size every `Stream` operation's future, and every future that awaits one, for the
//! largest variant, and plain TCP would copy those bytes each time an operation's future is
//! built and moved (about 3% of a plain keep-alive request's CPU). A TLS operation pays one
//! small allocation instead.
//!
//! TLS caveat (research/stack.md P3): after a timeout cancels a pending TLS read, monoio-rustls
//! panics on the next read (the cancelled operation took its read buffer); after a cancelled
//! write, on the next write, and on a read that fails (it writes an alert). A TLS stream tracks
//! both: after a cancelled read it refuses to read but still writes (a 408, its close_notify);
//! after a cancelled write it refuses everything, and the connection closes.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;

/// The longest a closing TLS connection waits to hand its close_notify to the kernel (nginx's
/// SSL shutdown waits 3 s too). It takes no time unless the peer stopped reading with its
/// receive window full; such a peer is not owed the last 24 bytes.
pub const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(3);

pub type ServerTls = monoio_rustls::ServerTlsStream<TcpStream>;
pub type ClientTls = monoio_rustls::ClientTlsStream<TcpStream>;

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    /// A client's TLS connection. Boxed: the rustls state is large and most are plain.
    Tls(Box<TlsConn<ServerTls>>),
    /// TLS to an upstream server.
    TlsUp(Box<TlsConn<ClientTls>>),
    /// Moved out (into a tunnel); every operation fails.
    Closed,
}

#[derive(Debug)]
pub struct TlsConn<S> {
    stream: S,
    /// The TCP socket under `stream`, which owns it (monoio-rustls lends no access to it).
    fd: RawFd,
    /// A read is under way; if its future is dropped this stays set: no more reads.
    reading: bool,
    /// A write, flush or shutdown is under way; if its future is dropped this stays set: no
    /// more operations of any kind.
    writing: bool,
    /// close_notify has been sent and the write side shut: a second shutdown does nothing.
    shut: bool,
}

impl<S> TlsConn<S> {
    fn new(stream: S, fd: RawFd) -> Box<TlsConn<S>> {
        Box::new(TlsConn {
            stream,
            fd,
            reading: false,
            writing: false,
            shut: false,
        })
    }

    /// Neither direction was cancelled: the stream can be split.
    fn whole(&self) -> bool {
        !self.reading && !self.writing
    }
}

/// The reading half of a split `Stream`.
pub enum ReadHalf {
    Tcp(OwnedReadHalf<TcpStream>),
    Tls(OwnedReadHalf<ServerTls>),
    TlsUp(OwnedReadHalf<ClientTls>),
}

/// The writing half of a split `Stream`.
pub enum WriteHalf {
    Tcp(OwnedWriteHalf<TcpStream>),
    Tls(OwnedWriteHalf<ServerTls>),
    TlsUp(OwnedWriteHalf<ClientTls>),
}

impl Stream {
    /// `fd`: the TCP socket the handshake was made on, now owned by `stream`.
    pub fn tls(stream: ServerTls, fd: RawFd) -> Stream {
        Stream::Tls(TlsConn::new(stream, fd))
    }

    /// `fd`: the TCP socket the handshake was made on, now owned by `stream`.
    pub fn tls_up(stream: ClientTls, fd: RawFd) -> Stream {
        Stream::TlsUp(TlsConn::new(stream, fd))
    }

    /// Wait until a plain TCP stream has bytes to read, its end, or an error, holding no
    /// buffer (an io_uring poll). TLS streams refuse: rustls may hold bytes already read.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable(false).await,
            _ => Err(plain_tcp_only()),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_) | Stream::TlsUp(_))
    }

    /// The answer about to be written is the connection's last, and all of it is at hand:
    /// hold it in the kernel (TCP_CORK) until the socket is shut or closed, so the FIN leaves
    /// in the answer's last segment. Closing then costs the client one segment less to
    /// receive and none to acknowledge: 9 segments per `Connection: close` request in all
    /// instead of 11 (benches/PERFORMANCE.md). Whole segments still go at once; only the tail
    /// waits.
    ///
    /// The caller closes the connection after this answer (a lingering close shuts the write
    /// side first, which sends the tail too); `Conn::hold_last_answer` decides when. Were it to
    /// go on instead, the kernel would send the tail within about 200 ms (its window probe),
    /// late but not lost. Over TLS the close_notify that ends the connection (`Conn::end`) waits
    /// too, so the answer's tail, close_notify and FIN leave in one segment.
    pub fn hold_for_close(&self) {
        let fd = match self {
            Stream::Tcp(tcp) => tcp.as_raw_fd(),
            Stream::Tls(t) => t.fd,
            Stream::TlsUp(t) => t.fd,
            Stream::Closed => return,
        };
        // The socket lives as long as the stream, which the borrow holds. A failure changes
        // nothing but the segment count.
        let _ = socket2_rawfd::SockRef::from(&Fd(fd)).set_cork(true);
    }

    /// Split into halves that can read and write at the same time. `None` for a TLS stream
    /// poisoned by a cancelled operation, or a closed one.
    pub fn into_split(self) -> Option<(ReadHalf, WriteHalf)> {
        Some(match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Tls(t) if t.whole() => {
                let (r, w) = t.stream.into_split();
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
            Stream::TlsUp(t) if t.whole() => {
                let (r, w) = t.stream.into_split();
                (ReadHalf::TlsUp(r), WriteHalf::TlsUp(w))
            }
            _ => return None,
        })
    }
}

/// A socket's descriptor, for `SockRef`, which borrows anything that has one.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl AsyncReadRent for ReadHalf {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Tcp(s) => s.read(buf).await,
            ReadHalf::Tls(s) => s.read(buf).await,
            ReadHalf::TlsUp(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Tcp(s) => s.readv(buf).await,
            ReadHalf::Tls(s) => s.readv(buf).await,
            ReadHalf::TlsUp(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for WriteHalf {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Tcp(s) => s.write(buf).await,
            WriteHalf::Tls(s) => s.write(buf).await,
            WriteHalf::TlsUp(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Tcp(s) => s.writev(buf).await,
            WriteHalf::Tls(s) => s.writev(buf).await,
            WriteHalf::TlsUp(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Tcp(s) => s.flush().await,
            WriteHalf::Tls(s) => s.flush().await,
            WriteHalf::TlsUp(s) => s.flush().await,
        }
    }

    /// Half-close: no more bytes this way (TLS: close_notify, then TCP FIN).
    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Tcp(s) => s.shutdown().await,
            WriteHalf::Tls(s) => s.shutdown().await,
            WriteHalf::TlsUp(s) => s.shutdown().await,
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream moved into a tunnel")
}

/// A cancellable read or a readiness wait asked of a TLS stream (monoio-rustls can cancel no
/// read, and its buffered bytes would not show as readiness).
fn plain_tcp_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "plain TCP only: cancellable reads and readiness waits",
    )
}

fn poisoned() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "TLS stream unusable after a cancelled operation",
    )
}

/// Run one read on a TLS connection, refusing if an earlier read or write was cancelled.
macro_rules! tls_read {
    ($t:expr, $op:expr, $buf:expr) => {{
        if !$t.whole() {
            return (Err(poisoned()), $buf);
        }
        $t.reading = true;
        let r = $op.await;
        $t.reading = false;
        r
    }};
}

/// Run one write, flush or shutdown on a TLS connection (`$refused`: its result when an
/// earlier one was cancelled).
macro_rules! tls_write {
    ($t:expr, $op:expr, $refused:expr) => {{
        if $t.writing {
            return $refused;
        }
        $t.writing = true;
        let r = $op.await;
        $t.writing = false;
        r
    }};
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Tls(t) => tls_read!(t, Box::pin(t.stream.read(buf)), buf),
            Stream::TlsUp(t) => tls_read!(t, Box::pin(t.stream.read(buf)), buf),
            Stream::Closed => (Err(closed()), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.readv(buf).await,
            Stream::Tls(t) => tls_read!(t, Box::pin(t.stream.readv(buf)), buf),
            Stream::TlsUp(t) => tls_read!(t, Box::pin(t.stream.readv(buf)), buf),
            Stream::Closed => (Err(closed()), buf),
        }
    }
}

/// Plain TCP only: a cancelled TLS read would leave monoio-rustls unable to read again (see
/// the caveat above), so a TLS stream refuses. Cancelled, a read ends with what it received
/// before the cancel took effect, or with `ECANCELED`: no byte is lost, unlike a read whose
/// future is dropped.
impl CancelableAsyncReadRent for Stream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.cancelable_read(buf, c).await,
            _ => (Err(plain_tcp_only()), buf),
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.cancelable_readv(buf, c).await,
            _ => (Err(plain_tcp_only()), buf),
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.write(buf).await,
            Stream::Tls(t) => tls_write!(t, Box::pin(t.stream.write(buf)), (Err(poisoned()), buf)),
            Stream::TlsUp(t) => {
                tls_write!(t, Box::pin(t.stream.write(buf)), (Err(poisoned()), buf))
            }
            Stream::Closed => (Err(closed()), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.writev(buf).await,
            Stream::Tls(t) => tls_write!(t, Box::pin(t.stream.writev(buf)), (Err(poisoned()), buf)),
            Stream::TlsUp(t) => {
                tls_write!(t, Box::pin(t.stream.writev(buf)), (Err(poisoned()), buf))
            }
            Stream::Closed => (Err(closed()), buf),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush().await,
            Stream::Tls(t) => tls_write!(t, Box::pin(t.stream.flush()), Err(poisoned())),
            Stream::TlsUp(t) => tls_write!(t, Box::pin(t.stream.flush()), Err(poisoned())),
            Stream::Closed => Err(closed()),
        }
    }

    /// TLS: close_notify, then TCP FIN; once (a second call does nothing).
    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Tls(t) => shut_tls(t).await,
            Stream::TlsUp(t) => shut_tls(t).await,
            Stream::Closed => Err(closed()),
        }
    }
}

async fn shut_tls<S: AsyncWriteRent>(t: &mut TlsConn<S>) -> io::Result<()> {
    if t.shut {
        return Ok(());
    }
    let r = tls_write!(t, Box::pin(t.stream.shutdown()), Err(poisoned()));
    t.shut = r.is_ok();
    r
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read};
    use std::time::Duration;

    use monoio::io::AsyncWriteRentExt;

    use super::*;

    /// A held answer stays in the kernel until the socket closes, then arrives with the end of
    /// the stream. Without the hold, the first write of a connection leaves at once.
    #[test]
    fn a_held_answer_leaves_with_the_close() {
        const ANSWER: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut stream = Stream::from(TcpStream::from_std(accepted).unwrap());
            stream.hold_for_close();
            let (res, _) = stream.write_all(ANSWER.to_vec()).await;
            assert_eq!(res.unwrap(), ANSWER.len());
            let mut byte = [0u8; 1];
            let early = client.read(&mut byte);
            assert!(
                matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
                "the answer left before the close: {early:?}"
            );
            drop(stream);
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, ANSWER);
    }
}
