//! Body relay: stream a message body from one socket to another through fixed buffers, decoding
//! the source framing strictly and encoding the sink framing ourselves. Used both ways (client →
//! upstream for requests, upstream → client for responses); never buffers a whole body.
//! A response body may also pass through a `Filter`: a streaming encoder (compression) and a
//! bounded copy of what is sent (the response cache's tee), both applied on the way.

use std::io;
use std::time::Duration;

use monoio::time::Instant;

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::buf::RecvBuf;
use crate::http::chunked::{self, ChunkError, Decoder};
use crate::http::BodyKind;
use crate::timer::Timer;

mod filter;
mod write;
use filter::emit;
pub use filter::{Filter, Tee};
use write::write_front_by;
pub use write::{write_all, write_all_by, write_all_timed};

/// Flush the output buffer once it holds this much.
pub const OUT_FLUSH_BYTES: usize = 64 * 1024;
/// Read buffer bound while relaying a body.
pub const RELAY_BUF_BYTES: usize = 64 * 1024;

#[derive(Debug)]
enum Source {
    /// Bytes of a Content-Length body still to come.
    Length(u64),
    Chunked(Decoder),
    UntilClose,
    Done,
}

/// How the body is written to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// As data, unframed (Content-Length or close-delimited output).
    Raw,
    /// Re-chunked.
    Chunked,
}

#[derive(Debug)]
pub struct Relay {
    source: Source,
    sink: Sink,
    /// Largest body accepted (data bytes).
    limit: u64,
    /// Data bytes seen so far.
    total: u64,
    /// Slowest source accepted (request bodies: the slow-POST floor).
    min_rate: Option<MinRate>,
    /// Compression and the cache's copy (response bodies of routes that use them); `None`
    /// on plain routes: one branch per piece of body.
    /// Boxed: a relay is built and moved with every request, and the filter would triple its
    /// size for the routes that use none.
    filter: Option<Box<Filter>>,
}

/// The slowest a body may arrive: at least `bytes_per_s` on average over every `window`.
/// A source below it gets `RelayError::ReadTimeout` when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_s: u64,
    pub window: Duration,
}

impl MinRate {
    /// Bytes due within one window.
    fn quota(&self) -> u64 {
        (u128::from(self.bytes_per_s) * self.window.as_millis() / 1000) as u64
    }
}

/// The current window of a `MinRate`: when it began and the bytes read in it.
#[derive(Debug, Clone, Copy)]
struct RateWindow {
    rate: MinRate,
    start: Instant,
    bytes: u64,
}

impl RateWindow {
    /// How long the next read may wait: up to the window's end while its quota is not met.
    fn read_timeout(&self, now: Instant, read_timeout: Duration) -> (Duration, bool) {
        if self.bytes >= self.rate.quota() {
            return (read_timeout, false);
        }
        let left = (self.start + self.rate.window).saturating_duration_since(now);
        if left < read_timeout {
            (left, true)
        } else {
            (read_timeout, false)
        }
    }

    /// Count `n` bytes read at `now`; false if a window ended below its quota.
    fn on_read(&mut self, n: usize, now: Instant) -> bool {
        self.bytes += n as u64;
        if now < self.start + self.rate.window {
            return true;
        }
        let ok = self.bytes >= self.rate.quota();
        self.start = now;
        self.bytes = 0;
        ok
    }
}

/// Where a message's first write was staged (`Relay::stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// All of it in the output buffer.
    Out,
    /// The first this many bytes of the read buffer: the head, then the body.
    InBuf(usize),
}

/// Write what `Relay::stage` staged (then clear `out`) by `deadline`.
pub async fn write_staged<W: AsyncWriteRent>(
    staged: Staged,
    inbuf: &mut RecvBuf,
    out: &mut Vec<u8>,
    dst: &mut W,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<(), RelayError> {
    match staged {
        Staged::Out => write_all_by(dst, out, deadline, timer).await,
        Staged::InBuf(n) => write_front_by(dst, inbuf, n, deadline, timer).await,
    }
}

#[derive(Debug)]
pub enum RelayError {
    ReadIo(io::Error),
    ReadTimeout,
    /// The source ended before the body did.
    ReadEof,
    Framing(ChunkError),
    TooLarge,
    WriteIo(io::Error),
    WriteTimeout,
}

impl Relay {
    pub fn new(body: BodyKind, sink: Sink, limit: u64) -> Relay {
        let source = match body {
            BodyKind::None | BodyKind::Length(0) => Source::Done,
            BodyKind::Length(n) => Source::Length(n),
            BodyKind::Chunked => Source::Chunked(Decoder::new()),
            BodyKind::UntilClose => Source::UntilClose,
        };
        Relay {
            source,
            sink,
            limit,
            total: 0,
            min_rate: None,
            filter: None,
        }
    }

    /// Pass the body through `filter` (compression, the cache's copy).
    pub fn with_filter(mut self, filter: Option<Filter>) -> Relay {
        self.filter = filter.map(Box::new);
        self
    }

    /// The filter back, when the body is done (its tee holds the copy).
    pub fn take_filter(&mut self) -> Option<Filter> {
        self.filter.take().map(|f| *f)
    }

    /// Body bytes sent to the sink: after compression when there is an encoder.
    pub fn sent(&self) -> u64 {
        match &self.filter {
            Some(f) if f.encoder.is_some() => f.sent,
            _ => self.total,
        }
    }

    /// Refuse a source slower than `rate` (`None`: no floor).
    pub fn with_min_rate(mut self, rate: Option<MinRate>) -> Relay {
        self.min_rate = rate;
        self
    }

    /// Body data bytes relayed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_done(&self) -> bool {
        matches!(self.source, Source::Done)
    }

    /// Move body bytes already in `inbuf` to `out`, encoded for the sink, until `out` holds
    /// `out_max` bytes or `inbuf` has no more body. Bytes after the body stay in `inbuf`.
    pub fn encode_buffered(
        &mut self,
        inbuf: &mut RecvBuf,
        out: &mut Vec<u8>,
        out_max: usize,
    ) -> Result<(), RelayError> {
        loop {
            if inbuf.is_empty() || out.len() >= out_max {
                return Ok(());
            }
            let room = out_max - out.len();
            match &mut self.source {
                Source::Done => return Ok(()),
                Source::Length(remaining) => {
                    let n = (*remaining).min(inbuf.len() as u64).min(room as u64) as usize;
                    *remaining -= n as u64;
                    let done = *remaining == 0;
                    self.pass_buffered(inbuf, out, n)?;
                    if done {
                        self.finish(out);
                    }
                }
                Source::UntilClose => self.pass_buffered(inbuf, out, inbuf.len().min(room))?,
                Source::Chunked(dec) => {
                    let pending = inbuf.pending();
                    let window = &pending[..pending.len().min(room.max(64))];
                    let step = dec.decode(window).map_err(RelayError::Framing)?;
                    let done = dec.is_done();
                    if let Some(r) = step.data.clone() {
                        let data = &window[r];
                        let at = (self.total, self.limit);
                        emit(out, data, self.sink, at, self.filter.as_deref_mut())?;
                        self.total += data.len() as u64;
                    }
                    inbuf.consume(step.consumed);
                    if done {
                        self.finish(out);
                    } else if step.consumed == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Pass the first `n` bytes of `inbuf`, unframed body data, to `out`.
    fn pass_buffered(
        &mut self,
        inbuf: &mut RecvBuf,
        out: &mut Vec<u8>,
        n: usize,
    ) -> Result<(), RelayError> {
        let at = (self.total, self.limit);
        emit(
            out,
            &inbuf.pending()[..n],
            self.sink,
            at,
            self.filter.as_deref_mut(),
        )?;
        self.total += n as u64;
        inbuf.consume(n);
        Ok(())
    }

    /// The source reached end of stream.
    pub fn on_eof(&mut self, out: &mut Vec<u8>) -> Result<(), RelayError> {
        match self.source {
            Source::UntilClose => {
                self.finish(out);
                Ok(())
            }
            Source::Done => Ok(()),
            Source::Length(_) | Source::Chunked(_) => Err(RelayError::ReadEof),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(f) = &mut self.filter {
            if let Some(e) = &mut f.encoder {
                e.finish();
            }
            f.drain(out, self.sink);
        }
        if self.sink == Sink::Chunked {
            out.extend_from_slice(chunked::LAST_CHUNK);
        }
        self.source = Source::Done;
    }

    /// Bytes of a Content-Length body with a raw sink that can be written straight from the
    /// read buffer, skipping the copy into `out`.
    fn direct_len(&self, pending: usize) -> Option<usize> {
        if self.filter.as_ref().is_some_and(|f| f.encoder.is_some()) {
            return None;
        }
        match (&self.source, self.sink) {
            (Source::Length(remaining), Sink::Raw) => {
                Some((*remaining).min(pending as u64) as usize)
            }
            _ => None,
        }
    }

    /// Count `data`, the body bytes at the front of the read buffer, as sent: the caller writes
    /// them from there (see `direct_len`).
    fn count_direct(&mut self, data: &[u8]) {
        if let Some(f) = &mut self.filter {
            f.sent(data);
        }
        let n = data.len() as u64;
        self.total += n;
        if let Source::Length(remaining) = &mut self.source {
            *remaining -= n;
            if *remaining == 0 {
                self.source = Source::Done;
            }
        }
    }

    /// Stage a message's first write: the head, already in `out`, and the body bytes already in
    /// `inbuf`. A Content-Length body sent as it is, longer than the head, is not copied: the
    /// head goes in front of it, over bytes of `inbuf` already consumed (the head it replaces,
    /// and the buffer's headroom), when they have room. Otherwise the body is encoded into `out`
    /// behind the head. Write the result with `write_staged`.
    pub fn stage(&mut self, inbuf: &mut RecvBuf, out: &mut Vec<u8>) -> Result<Staged, RelayError> {
        if let Some(n) = self.direct_len(inbuf.len()).filter(|&n| n > out.len()) {
            if inbuf.prepend(out) {
                let head = out.len();
                self.count_direct(&inbuf.pending()[head..head + n]);
                out.clear();
                return Ok(Staged::InBuf(head + n));
            }
        }
        self.encode_buffered(inbuf, out, OUT_FLUSH_BYTES)?;
        Ok(Staged::Out)
    }

    /// Stream the rest of the body from `src` to `dst`. `out` must be empty on entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
        &mut self,
        src: &mut R,
        inbuf: &mut RecvBuf,
        dst: &mut W,
        out: &mut Vec<u8>,
        read_timeout: Duration,
        write_timeout: Duration,
        timer: &mut Timer,
    ) -> Result<(), RelayError> {
        debug_assert!(out.is_empty());
        // Bytes that came with the head count towards the first window.
        let mut window = self.min_rate.map(|rate| RateWindow {
            rate,
            start: Instant::now(),
            bytes: self.total,
        });
        loop {
            if let Some(n) = self.direct_len(inbuf.len()).filter(|&n| n > 0) {
                self.count_direct(&inbuf.pending()[..n]);
                let deadline = Instant::now() + write_timeout;
                write_front_by(dst, inbuf, n, deadline, timer).await?;
            } else {
                self.encode_buffered(inbuf, out, OUT_FLUSH_BYTES)?;
                if inbuf.is_empty() && !self.is_done() {
                    self.flush_encoder(out);
                }
                let flush = self.is_done() || out.len() >= OUT_FLUSH_BYTES || inbuf.is_empty();
                if flush && !out.is_empty() {
                    write_all_timed(dst, out, write_timeout, timer).await?;
                }
            }
            if self.is_done() {
                return Ok(());
            }
            if !inbuf.is_empty() && out.len() < OUT_FLUSH_BYTES {
                continue;
            }
            let (wait, rate_bound) = match &window {
                Some(w) => w.read_timeout(Instant::now(), read_timeout),
                None => (read_timeout, false),
            };
            let read = timer.limit(wait, inbuf.fill(src, RELAY_BUF_BYTES)).await;
            if let (Ok(Ok(n)), Some(w)) = (&read, &mut window) {
                if !w.on_read(*n, Instant::now()) {
                    return Err(RelayError::ReadTimeout);
                }
            }
            if rate_bound && read.is_err() {
                tracing::debug!("request body below the minimum rate");
            }
            match read {
                Ok(Ok(0)) => {
                    self.on_eof(out)?;
                    if !out.is_empty() {
                        write_all_timed(dst, out, write_timeout, timer).await?;
                    }
                    return Ok(());
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(RelayError::ReadIo(e)),
                Err(_) => return Err(RelayError::ReadTimeout),
            }
        }
    }
}

impl Relay {
    /// Before waiting for more input: push what the encoder holds out to the client.
    fn flush_encoder(&mut self, out: &mut Vec<u8>) {
        if let Some(f) = &mut self.filter {
            if let Some(e) = f.encoder.as_mut().filter(|e| e.is_dirty()) {
                e.flush();
                f.drain(out, self.sink);
            }
        }
    }
}

fn emit_to(
    out: &mut Vec<u8>,
    data: &[u8],
    sink: Sink,
    total: u64,
    limit: u64,
) -> Result<(), RelayError> {
    if total + data.len() as u64 > limit {
        return Err(RelayError::TooLarge);
    }
    match sink {
        Sink::Raw => out.extend_from_slice(data),
        Sink::Chunked => chunked::write_chunk(out, data),
    }
    Ok(())
}
