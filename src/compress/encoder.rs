//! Streaming gzip (flate2, pure-Rust miniz_oxide backend) and brotli encoders writing into
//! a growable buffer the relay drains after every call, so a body is never held whole:
//! memory per compressed response is the encoder's state (brotli's window is capped at
//! 256 KiB) plus what one relay step produces.

use std::io::Write;

use flate2::write::GzEncoder;

use super::{Coding, CompressionSettings};

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
    Gzip(GzEncoder<Vec<u8>>),
    Br(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
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
            Coding::Gzip => Inner::Gzip(GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(s.gzip_level),
            )),
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
        let _ = match &mut self.inner {
            Inner::Gzip(g) => g.write_all(data),
            Inner::Br(Some(b)) => b.write_all(data),
            Inner::Br(None) => Ok(()),
        };
    }

    /// Input was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Push out everything written so far as decodable output (a sync flush), so a client
    /// sees a slow stream as it arrives.
    pub fn flush(&mut self) {
        self.dirty = false;
        let _ = match &mut self.inner {
            Inner::Gzip(g) => g.flush(),
            Inner::Br(Some(b)) => b.flush(),
            Inner::Br(None) => Ok(()),
        };
    }

    /// End the stream (gzip trailer, brotli last block).
    pub fn finish(&mut self) {
        self.dirty = false;
        match &mut self.inner {
            Inner::Gzip(g) => {
                let _ = g.try_finish();
            }
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
            Inner::Gzip(g) => g.get_mut(),
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
}
