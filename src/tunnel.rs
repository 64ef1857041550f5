//! Two-way byte tunnel between a client and an upstream after a `101 Switching Protocols`
//! (WebSocket and other upgrades). Both directions run at once, each over a split stream half
//! and its own fixed buffer; an end of stream one way is passed on as a half-close and the
//! other way goes on. The tunnel ends when both ways have ended, on the first error, or when
//! no byte has moved either way for the idle timeout. Nothing here parses HTTP.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use futures_util::future;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::time::Instant;

use crate::stream::{ReadHalf, Stream, WriteHalf};

/// Read buffer per direction.
const TUNNEL_BUF_BYTES: usize = 16 * 1024;

/// Bytes moved by a tunnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Client → upstream.
    pub up: u64,
    /// Upstream → client.
    pub down: u64,
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed their direction.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A read or write failed (reset, TLS error).
    Error,
}

/// Relay `client` ⇄ `upstream` until both ends close, one fails, or they are idle for `idle`.
/// `early` holds bytes the client sent after its upgrade request: they go upstream first.
pub async fn run(client: Stream, upstream: Stream, early: &[u8], idle: Duration) -> (End, Moved) {
    let mut upstream = upstream;
    let mut moved = Moved::default();
    if !early.is_empty() {
        let sent = monoio::time::timeout(idle, upstream.write_all(early.to_vec())).await;
        if !matches!(sent, Ok((Ok(_), _))) {
            return (End::Error, moved);
        }
        moved.up = early.len() as u64;
    }
    let (Some((mut cr, mut cw)), Some((mut ur, mut uw))) =
        (client.into_split(), upstream.into_split())
    else {
        return (End::Error, moved);
    };
    let last = Cell::new(Instant::now());
    let (up, down) = (Cell::new(moved.up), Cell::new(0));
    let end = {
        let both = future::try_join(
            pump(&mut cr, &mut uw, &last, &up),
            pump(&mut ur, &mut cw, &last, &down),
        );
        monoio::select! {
            r = both => if r.is_ok() { End::Closed } else { End::Error },
            _ = idle_watch(&last, idle) => End::Idle,
        }
    };
    (
        end,
        Moved {
            up: up.get(),
            down: down.get(),
        },
    )
}

/// Copy one direction until end of stream, then half-close the other side.
async fn pump(
    from: &mut ReadHalf,
    to: &mut WriteHalf,
    last: &Cell<Instant>,
    count: &Cell<u64>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(TUNNEL_BUF_BYTES);
    loop {
        let (res, b) = from.read(buf).await;
        let n = res?;
        if n == 0 {
            // Nothing more this way; the peer may still be sending the other way.
            let _ = monoio::io::AsyncWriteRent::shutdown(to).await;
            return Ok(());
        }
        last.set(Instant::now());
        let (res, mut b) = to.write_all(b).await;
        res?;
        count.set(count.get() + n as u64);
        last.set(Instant::now());
        b.clear();
        buf = b;
    }
}

/// Resolve once nothing has moved for `idle`.
async fn idle_watch(last: &Cell<Instant>, idle: Duration) {
    loop {
        let due = last.get() + idle;
        if Instant::now() >= due {
            return;
        }
        monoio::time::sleep_until(due).await;
    }
}
