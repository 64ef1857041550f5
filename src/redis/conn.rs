//! One Redis connection over a monoio socket: connect, `AUTH` and `SELECT` from the target,
//! then one command at a time (write it, read its reply). No pipelining and no timeouts here:
//! the caller wraps each call in its own deadline and drops the connection when one passes
//! (a cancelled read leaves the stream at an unknown place in the protocol).

use std::io;
use std::net::SocketAddr;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::resp::{self, ProtocolError, Reply};
use super::RedisTarget;
use crate::buf::RecvBuf;

/// Read buffer bound: replies are small (integers, a SHA1, short errors).
const READ_BYTES_MAX: usize = 128 * 1024;

#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: RecvBuf,
    /// Reused for every command.
    out: Vec<u8>,
    pub addr: SocketAddr,
}

/// Why a call failed. Every variant means the connection must be dropped, except `Redis`
/// (an error reply: the connection is still in step).
#[derive(Debug)]
pub enum CallError {
    Io(io::Error),
    Protocol(ProtocolError),
    Closed,
    /// Redis answered with an error (`-ERR …`, `-NOSCRIPT …`, `-MOVED …`).
    Redis(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Protocol(e) => write!(f, "protocol error: {}", e.0),
            CallError::Closed => f.write_str("connection closed by Redis"),
            CallError::Redis(e) => write!(f, "Redis error: {e}"),
        }
    }
}

impl Conn {
    /// Connect to `addr` and authenticate / select the database as `target` says.
    pub async fn open(addr: SocketAddr, target: &RedisTarget) -> Result<Conn, CallError> {
        let stream = TcpStream::connect_addr(addr).await.map_err(CallError::Io)?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream,
            buf: RecvBuf::with_capacity(1024),
            out: Vec::with_capacity(512),
            addr,
        };
        if let Some(password) = &target.password {
            let reply = match &target.username {
                Some(user) => {
                    conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                        .await?
                }
                None => conn.call(&[b"AUTH", password.as_bytes()]).await?,
            };
            expect_ok(reply)?;
        }
        if target.db != 0 {
            let db = itoa::Buffer::new().format(target.db).to_owned();
            expect_ok(conn.call(&[b"SELECT", db.as_bytes()]).await?)?;
        }
        Ok(conn)
    }

    /// Send one command and read its reply. An error reply is `Err(CallError::Redis)`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, CallError> {
        self.out.clear();
        resp::encode(&mut self.out, args);
        let out = std::mem::take(&mut self.out);
        let (res, out) = self.stream.write_all(out).await;
        self.out = out;
        res.map_err(CallError::Io)?;
        loop {
            if let Some((reply, used)) =
                resp::parse(self.buf.pending()).map_err(CallError::Protocol)?
            {
                self.buf.consume(used);
                return match reply {
                    Reply::Error(e) => Err(CallError::Redis(e)),
                    r => Ok(r),
                };
            }
            match self.buf.fill(&mut self.stream, READ_BYTES_MAX).await {
                Ok(0) => return Err(CallError::Closed),
                Ok(_) => {}
                Err(e) => return Err(CallError::Io(e)),
            }
        }
    }
}

impl Conn {
    /// Resolves when Redis closes the connection, or sends what nobody asked for: either way
    /// the connection is over. Awaited while idle, so that a dead Redis is noticed before a
    /// request needs it; dropping it (a request came) loses nothing, as nothing is expected.
    pub async fn closed(&mut self) -> CallError {
        match self.buf.fill(&mut self.stream, READ_BYTES_MAX).await {
            Ok(0) => CallError::Closed,
            Ok(_) => CallError::Protocol(ProtocolError("unsolicited reply")),
            Err(e) => CallError::Io(e),
        }
    }
}

fn expect_ok(reply: Reply) -> Result<(), CallError> {
    match reply {
        Reply::Simple(_) => Ok(()),
        _ => Err(CallError::Protocol(ProtocolError("expected +OK"))),
    }
}
