//! Streaming gzip (flate2 on zlib-rs, pure Rust) and brotli encoders writing into
//! a growable buffer the relay drains after every call, so a body is never held whole:
//! memory per compressed response is the encoder's state (brotli's window is capped at
//! 256 KiB) plus what one relay step produces.
//!
//! gzip's deflate state (about 300 KiB of tables and buffers) is kept between answers in a
//! small per-shard pool and reset, not allocated and zeroed for each one: freshly allocated,
//! those pages were faulted in again for every answer (glibc gives the freed top of a thread's
//! heap back to the kernel), which cost about 40% of a compressed 16 KiB answer's CPU. An
//! answer holds a state only from its first body bytes to its end, not while it waits for its
//! body or for the client to take the last of it, so that a shard serving many compressed
//! answers at once still needs few states.

use std::cell::RefCell;
use std::io::Write;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::{Coding, CompressionSettings};

/// Idle deflate states kept per shard. An answer being compressed holds one; more answers at
/// once allocate their own, and those beyond the pool's size are freed when they end.
const DEFLATE_POOL_MAX: usize = 8;
/// Output room reserved before each call into the compressor (it writes only into spare
/// capacity); a call that fills it is repeated.
const OUTPUT_STEP: usize = 4096;
/// Calls into the compressor to flush or finish before giving up (each makes room for
/// `OUTPUT_STEP` more bytes, so this is far beyond any real flush).
const DRAIN_CALLS_MAX: usize = 4096;

thread_local! {
    /// This thread's idle deflate states. Each shard is one thread, so this is the shard's
    /// own pool, like its caches: nothing is shared between shards.
    static DEFLATE_POOL: RefCell<Vec<Deflate>> = const { RefCell::new(Vec::new()) };
}

/// brotli window: 2^18 bytes, well below its 4 MiB default, to bound memory per response.
const BROTLI_LGWIN: u32 = 18;
/// brotli's internal buffer.
const BROTLI_BUF_BYTES: usize = 4096;

pub struct Encoder {
    inner: Inner,
    /// Input written since the last flush.
    dirty: bool,
    /// The output of a finished brotli stream (its writer is consumed to finish it).
    finished: Vec<u8>,
}

enum Inner {
    Gzip(Gzip),
    Br(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
}

/// A raw deflate state and the level it was made for.
struct Deflate {
    level: u32,
    state: Compress,
}

impl Deflate {
    /// A reset state for `level`: the pool's when it has one for that level (states for
    /// another level, left from before a reload, are dropped on the way), else a new one.
    fn take(level: u32) -> Deflate {
        let pooled = DEFLATE_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            while let Some(d) = pool.pop() {
                if d.level == level {
                    return Some(d);
                }
            }
            None
        });
        pooled.unwrap_or_else(|| Deflate {
            level,
            state: Compress::new(Compression::new(level), false),
        })
    }

    /// Back to the pool, reset, unless it is full.
    fn give_back(mut self) {
        DEFLATE_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < DEFLATE_POOL_MAX {
                self.state.reset();
                pool.push(self);
            }
        });
    }
}

/// gzip (RFC 1952): a 10-byte header, the raw deflate stream, then the CRC-32 and length of
/// the input. The same bytes as flate2's `GzEncoder` makes, on a pooled deflate state.
struct Gzip {
    level: u32,
    /// Taken from the pool at the first body bytes, given back when the stream ends.
    deflate: Option<Deflate>,
    crc: Crc,
    out: Vec<u8>,
    finished: bool,
}

impl Gzip {
    fn new(level: u32) -> Gzip {
        // Extra flags as flate2 sets them: 2 for the slowest level, 4 for the fastest.
        let xfl = match level {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        let mut out = Vec::with_capacity(OUTPUT_STEP);
        // Magic, deflate, no flags, no modification time, extra flags, unknown OS.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
        Gzip {
            level,
            deflate: None,
            crc: Crc::new(),
            out,
            finished: false,
        }
    }

    fn write(&mut self, mut data: &[u8]) {
        if self.finished {
            return;
        }
        self.crc.update(data);
        let c = state(&mut self.deflate, self.level);
        while !data.is_empty() {
            self.out.reserve(OUTPUT_STEP.max(data.len() / 2));
            let before = c.total_in();
            if c.compress_vec(data, &mut self.out, FlushCompress::None)
                .is_err()
            {
                return;
            }
            let used = (c.total_in() - before) as usize;
            data = &data[used.min(data.len())..];
            if used == 0 && self.out.len() < self.out.capacity() {
                return; // no progress with room to spare: never seen; do not spin
            }
        }
    }

    /// Run the compressor on no input with `flush` until its output stops short of the room
    /// it was given (all is out) or the stream ends; later calls continue with no flush, as
    /// flate2's writer does. Returns whether the stream ended.
    fn drain(&mut self, flush: FlushCompress) -> bool {
        let out = &mut self.out;
        let c = state(&mut self.deflate, self.level);
        let mut mode = flush;
        for _ in 0..DRAIN_CALLS_MAX {
            out.reserve(OUTPUT_STEP);
            match c.compress_vec(&[], out, mode) {
                Ok(Status::StreamEnd) => return true,
                Ok(_) if out.len() < out.capacity() && flush != FlushCompress::Finish => {
                    return false;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
            if flush != FlushCompress::Finish {
                mode = FlushCompress::None;
            }
        }
        false
    }

    fn flush(&mut self) {
        if !self.finished {
            self.drain(FlushCompress::Sync);
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.drain(FlushCompress::Finish) {
            self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
            self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
        }
        // The state's work is done: back to the pool now, not when the answer's last bytes
        // have reached the client.
        if let Some(d) = self.deflate.take() {
            d.give_back();
        }
    }
}

/// The answer's deflate state, taken from the pool at its first use.
fn state(deflate: &mut Option<Deflate>, level: u32) -> &mut Compress {
    &mut deflate.get_or_insert_with(|| Deflate::take(level)).state
}

impl Drop for Gzip {
    fn drop(&mut self) {
        if let Some(d) = self.deflate.take() {
            d.give_back();
        }
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Gzip(_) => "gzip",
            Inner::Br(_) => "br",
        };
        f.debug_struct("Encoder").field("coding", &kind).finish()
    }
}

impl Encoder {
    /// An encoder for `coding`; `None` for identity.
    pub fn new(coding: Coding, s: &CompressionSettings) -> Option<Encoder> {
        let inner = match coding {
            Coding::Identity => return None,
            Coding::Gzip => Inner::Gzip(Gzip::new(s.gzip_level)),
            Coding::Br => Inner::Br(Some(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUF_BYTES,
                s.brotli_level,
                BROTLI_LGWIN,
            )))),
        };
        Some(Encoder {
            inner,
            dirty: false,
            finished: Vec::new(),
        })
    }

    /// Compress `data`; the output so far is in `output()`. Writing into memory cannot fail.
    pub fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.dirty = true;
        match &mut self.inner {
            Inner::Gzip(g) => g.write(data),
            Inner::Br(Some(b)) => {
                let _ = b.write_all(data);
            }
            Inner::Br(None) => {}
        }
    }

    /// Input was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Push out everything written so far as decodable output (a sync flush), so a client
    /// sees a slow stream as it arrives.
    pub fn flush(&mut self) {
        self.dirty = false;
        match &mut self.inner {
            Inner::Gzip(g) => g.flush(),
            Inner::Br(Some(b)) => {
                let _ = b.flush();
            }
            Inner::Br(None) => {}
        }
    }

    /// End the stream (gzip trailer, brotli last block).
    pub fn finish(&mut self) {
        self.dirty = false;
        match &mut self.inner {
            Inner::Gzip(g) => g.finish(),
            Inner::Br(b) => {
                if let Some(w) = b.take() {
                    self.finished = w.into_inner();
                }
            }
        }
    }

    /// Output produced and not yet taken: the caller copies it out and clears it.
    pub fn output(&mut self) -> &mut Vec<u8> {
        match &mut self.inner {
            Inner::Gzip(g) => &mut g.out,
            Inner::Br(Some(b)) => b.get_mut(),
            Inner::Br(None) => &mut self.finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn settings() -> CompressionSettings {
        CompressionSettings {
            gzip_level: 5,
            brotli_level: 4,
            min_bytes: 0,
            types: Vec::new(),
            encodings: vec![Coding::Br, Coding::Gzip],
        }
    }

    fn run(coding: Coding, pieces: &[&[u8]]) -> Vec<u8> {
        let mut e = Encoder::new(coding, &settings()).unwrap();
        let mut out = Vec::new();
        for p in pieces {
            e.write(p);
            e.flush();
            out.append(e.output());
        }
        e.finish();
        out.append(e.output());
        out
    }

    #[test]
    fn streams_decode_to_the_original() {
        let text: Vec<u8> = (0..200_000u32)
            .map(|i| b"abcdefgh"[(i % 7) as usize])
            .collect();
        let pieces: Vec<&[u8]> = text.chunks(7000).collect();
        let gz = run(Coding::Gzip, &pieces);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let br = run(Coding::Br, &pieces);
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        assert!(br.len() < text.len() / 10 && gz.len() < text.len() / 10);
        assert!(Encoder::new(Coding::Identity, &settings()).is_none());
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    /// The pooled encoder writes exactly what flate2's `GzEncoder` writes for the same input
    /// and flushes, on a new state and on one reused from the pool, including one given back
    /// mid-stream (its client went away) and one with sync flushes in a long stream.
    #[test]
    fn gzip_matches_flate2_on_new_and_reused_states() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"v\":{}}},", i % 97).into_bytes())
            .collect();
        let pieces: Vec<&[u8]> = text.chunks(5000).collect();
        let expected = {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), Compression::new(5));
            for p in &pieces {
                g.write_all(p).unwrap();
                g.flush().unwrap();
            }
            g.finish().unwrap()
        };
        DEFLATE_POOL.with(|p| p.borrow_mut().clear());
        assert_eq!(run(Coding::Gzip, &pieces), expected, "new state");
        assert_eq!(DEFLATE_POOL.with(|p| p.borrow().len()), 1, "given back");
        let mut abandoned = Encoder::new(Coding::Gzip, &settings()).unwrap();
        abandoned.write(&text[..70_000]);
        drop(abandoned);
        assert_eq!(run(Coding::Gzip, &pieces), expected, "reused state");
        assert_eq!(gunzip(&expected), text);
        // Empty input, and the pool's bound.
        assert_eq!(gunzip(&run(Coding::Gzip, &[])), b"");
        let many: Vec<Encoder> = (0..DEFLATE_POOL_MAX + 3)
            .map(|_| {
                let mut e = Encoder::new(Coding::Gzip, &settings()).unwrap();
                e.write(b"mid-stream");
                e
            })
            .collect();
        drop(many);
        assert_eq!(DEFLATE_POOL.with(|p| p.borrow().len()), DEFLATE_POOL_MAX);
    }

    /// An encoder takes its state at its first body bytes and gives it back when its stream
    /// ends, while the answer may still be on its way to the client: many answers at once
    /// that are waiting for their body or for their client hold none.
    #[test]
    fn gzip_holds_its_state_only_while_compressing() {
        let pooled = || DEFLATE_POOL.with(|p| p.borrow().len());
        DEFLATE_POOL.with(|p| p.borrow_mut().clear());
        drop(run(Coding::Gzip, &[b"warm the pool"]));
        assert_eq!(pooled(), 1);
        let mut waiting: Vec<Encoder> = (0..DEFLATE_POOL_MAX * 4)
            .map(|_| Encoder::new(Coding::Gzip, &settings()).unwrap())
            .collect();
        assert_eq!(pooled(), 1, "no state taken before the body");
        for e in &mut waiting {
            e.write(b"some body bytes, some body bytes");
            assert_eq!(pooled(), 0, "taken at the first bytes");
            e.finish();
            assert_eq!(pooled(), 1, "back at the end of the stream");
        }
        for e in &mut waiting {
            let gz = std::mem::take(e.output());
            assert_eq!(gunzip(&gz), b"some body bytes, some body bytes");
        }
        drop(waiting);
        assert_eq!(pooled(), 1, "nothing given back twice");
        // A stream with no body still ends as gzip.
        let mut empty = Encoder::new(Coding::Gzip, &settings()).unwrap();
        empty.finish();
        assert_eq!(gunzip(empty.output()), b"");
        assert_eq!(pooled(), 1);
    }

    /// A state made for another level (before a reload) is not reused for this one.
    #[test]
    fn gzip_level_change_takes_a_new_state() {
        let text = b"level level level level level level level level".repeat(200);
        let mut s9 = settings();
        s9.gzip_level = 9;
        let one = |s: &CompressionSettings| {
            let mut e = Encoder::new(Coding::Gzip, s).unwrap();
            e.write(&text);
            e.finish();
            std::mem::take(e.output())
        };
        let at5 = one(&settings());
        let at9 = one(&s9);
        let mut g = flate2::write::GzEncoder::new(Vec::new(), Compression::new(9));
        g.write_all(&text).unwrap();
        assert_eq!(at9, g.finish().unwrap());
        assert_eq!(gunzip(&at5), text);
        assert_eq!(at9[8], 2, "extra flags of the slowest level");
    }
}
