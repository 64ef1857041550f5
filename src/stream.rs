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
//!
//! A client's TLS read can still be cancelled without loss: its socket is a `CancelableIo`
//! (coregate's copy of monoio-io-wrapper), whose reads take a cancel handle while one is armed.
//! The cancelled read then ends, awaited to its end like a plain one, with what it received or
//! with `ECANCELED`, and monoio-rustls's buffers are left whole. That is how an idle connection
//! gives up its wait for the next request (`connection::idle`), over TLS as over plain TCP;
//! waiting idle, it is a `Parked` stream, its socket and its rustls state, without the
//! buffers.

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
use monoio_io_wrapper::{CancelSlot, CancelableIo};
use rustls::ServerConnection;

/// The longest a closing TLS connection waits to hand its close_notify to the kernel (nginx's
/// SSL shutdown waits 3 s too). It takes no time unless the peer stopped reading with its
/// receive window full; such a peer is not owed the last 24 bytes.
pub const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(3);

pub type ServerTls = monoio_rustls::ServerTlsStream<CancelableIo<TcpStream>>;
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
    /// Makes the reads of a client's stream cancellable (`CancelableIo`); none upstream.
    cancel: Option<CancelSlot>,
}

impl<S> TlsConn<S> {
    fn new(stream: S, fd: RawFd, cancel: Option<CancelSlot>) -> Box<TlsConn<S>> {
        Box::new(TlsConn {
            stream,
            fd,
            reading: false,
            writing: false,
            shut: false,
            cancel,
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

/// A client connection's stream while it waits, released, for its next request
/// (`connection::idle`): what it needs to wait for readiness holding no buffer. A TLS stream is
/// taken apart into its socket and its rustls state (which keeps a partly received record, and
/// anything rustls still has to send); monoio-rustls's read and write buffers, empty once a
/// cancelled read ended with nothing, are dropped and made anew when it resumes.
pub enum Parked {
    Tcp(TcpStream),
    Tls(Box<ParkedTls>),
}

pub struct ParkedTls {
    socket: CancelableIo<TcpStream>,
    session: ServerConnection,
    fd: RawFd,
    cancel: CancelSlot,
}

impl Parked {
    /// Wait until the client sends, closes or errs (an io_uring poll: no buffer).
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Parked::Tcp(s) => s.readable(false).await,
            Parked::Tls(t) => t.socket.get_ref().readable(false).await,
        }
    }

    /// The stream again, to read the next request.
    pub fn resume(self) -> Stream {
        match self {
            Parked::Tcp(s) => Stream::Tcp(s),
            Parked::Tls(t) => {
                let ParkedTls {
                    socket,
                    session,
                    fd,
                    cancel,
                } = *t;
                let stream = ServerTls::new(socket, session);
                Stream::Tls(TlsConn::new(stream, fd, Some(cancel)))
            }
        }
    }
}

impl Stream {
    /// `fd`: the TCP socket the handshake was made on, now owned by `stream`; `cancel`: the
    /// slot of that socket (`CancelableIo`).
    pub fn tls(stream: ServerTls, fd: RawFd, cancel: CancelSlot) -> Stream {
        Stream::Tls(TlsConn::new(stream, fd, Some(cancel)))
    }

    /// `fd`: the TCP socket the handshake was made on, now owned by `stream`.
    pub fn tls_up(stream: ClientTls, fd: RawFd) -> Stream {
        Stream::TlsUp(TlsConn::new(stream, fd, None))
    }

    /// Its reads can be cancelled (`CancelableAsyncReadRent`): plain TCP, and a client's TLS
    /// stream that no cancelled operation has poisoned.
    pub fn cancellable(&self) -> bool {
        match self {
            Stream::Tcp(_) => true,
            Stream::Tls(t) => t.cancel.is_some() && t.whole(),
            _ => false,
        }
    }

    /// Taken apart to wait for the next request (`Parked`), right after a cancelled read that
    /// ended with nothing (`ECANCELED`). `None` for a stream that cannot be (see
    /// `cancellable`); the connection is then closed.
    pub fn park(self) -> Option<Parked> {
        match self {
            Stream::Tcp(s) => Some(Parked::Tcp(s)),
            Stream::Tls(t) if t.whole() => {
                let TlsConn {
                    stream, fd, cancel, ..
                } = *t;
                let (socket, session) = stream.into_parts();
                Some(Parked::Tls(Box::new(ParkedTls {
                    socket,
                    session,
                    fd,
                    cancel: cancel?,
                })))
            }
            _ => None,
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

/// A cancellable read asked of a stream that has none (`Stream::cancellable`).
fn not_cancellable() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "cancellable reads: plain TCP and a client's TLS only",
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

/// Run one read on a client's TLS connection, its socket's reads cancellable by `$c` meanwhile
/// (`CancelableIo`); refused where its reads cannot be cancelled (`Stream::cancellable`).
macro_rules! tls_cancelable_read {
    ($t:expr, $op:expr, $buf:expr, $c:expr) => {{
        let Some(slot) = $t.cancel.clone().filter(|_| $t.whole()) else {
            return (Err(not_cancellable()), $buf);
        };
        slot.arm($c);
        let r = tls_read!($t, $op, $buf);
        cancelled_as_such(r, slot.disarm())
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

/// Plain TCP, and a client's TLS through its socket (`CancelableIo`); others refuse
/// (`Stream::cancellable`). Cancelled, a read ends with what it received before the cancel
/// took effect, or with `ECANCELED`: no byte is lost, unlike a read whose future is dropped.
impl CancelableAsyncReadRent for Stream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.cancelable_read(buf, c).await,
            Stream::Tls(t) => tls_cancelable_read!(t, Box::pin(t.stream.read(buf)), buf, c),
            _ => (Err(not_cancellable()), buf),
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Tcp(s) => s.cancelable_readv(buf, c).await,
            Stream::Tls(t) => tls_cancelable_read!(t, Box::pin(t.stream.readv(buf)), buf, c),
            _ => (Err(not_cancellable()), buf),
        }
    }
}

/// A TLS read whose socket read was cancelled fails with an error that monoio-rustls's buffer
/// reduced to its kind: give it back as `ECANCELED`, as a plain cancelled read ends.
fn cancelled_as_such<T>(r: BufResult<usize, T>, cancelled: bool) -> BufResult<usize, T> {
    match r {
        (Err(_), buf) if cancelled => (Err(io::Error::from_raw_os_error(libc::ECANCELED)), buf),
        r => r,
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
