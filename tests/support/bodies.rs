//! Bodies for compression tests: a compressible text body, and gzip and brotli decoders.

use std::io::Read;

/// Decode a gzip body.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Decode a brotli body.
pub fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

/// A text body of `n` bytes that compresses well but is not trivially repetitive.
pub fn text_body(n: usize) -> Vec<u8> {
    let words = [
        "edge ", "proxy ", "shard ", "cache ", "core ", "ring ", "route ", "pool ",
    ];
    let mut out = Vec::with_capacity(n + 8);
    let mut x: u32 = 7;
    while out.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    out.truncate(n);
    out
}
