//! Chunked codec checks: decoding does not depend on how the input is split into reads, never
//! reads past the end of the body, and whatever coregate encodes decodes back to the same data.

use coregate::http::chunked::{self, ChunkError, Decoder};

/// (data, bytes consumed, body complete) or the first error.
type Decoded = Result<(Vec<u8>, usize, bool), ChunkError>;

/// Decode `input` arriving in reads of `step` bytes.
fn decode(input: &[u8], step: usize) -> Decoded {
    let mut dec = Decoder::new();
    let mut data = Vec::new();
    let mut pos = 0;
    let mut avail = step.min(input.len());
    // Every round consumes a byte or makes one more available: bounded by 2 × len + 2.
    for _ in 0..2 * input.len() + 2 {
        if dec.is_done() {
            break;
        }
        let s = dec.decode(&input[pos..avail])?;
        assert!(s.consumed <= avail - pos, "consumed past the input");
        if let Some(r) = s.data.clone() {
            assert!(
                r.end <= s.consumed && r.start <= r.end,
                "data outside the step"
            );
            data.extend_from_slice(&input[pos + r.start..pos + r.end]);
        }
        pos += s.consumed;
        if s.consumed == 0 {
            if avail == input.len() {
                break;
            }
            avail = (avail + step).min(input.len());
        }
    }
    Ok((data, pos, dec.is_done()))
}

pub fn chunked(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let split = decode(input, usize::from(ctl % 13) + 1);
    assert_eq!(whole, split, "decoding depends on the read boundaries");
    if let Ok((_, used, true)) = &whole {
        assert!(input[..*used].ends_with(b"\r\n"), "body ended without CRLF");
    }
    round_trip(ctl, input);
}

/// Encode `payload` in chunks of sizes driven by `ctl`, then decode it back.
fn round_trip(ctl: u8, payload: &[u8]) {
    let mut encoded = Vec::new();
    let size = usize::from(ctl) + 1;
    for piece in payload.chunks(size) {
        chunked::write_chunk(&mut encoded, piece);
    }
    encoded.extend_from_slice(chunked::LAST_CHUNK);
    encoded.extend_from_slice(b"NEXT");
    let step = usize::from(ctl % 7) + 1;
    let (data, used, done) = decode(&encoded, step).expect("our own encoding decodes");
    assert!(done, "our own encoding did not end");
    assert_eq!(data, payload);
    assert_eq!(
        &encoded[used..],
        b"NEXT",
        "decoder read past the last chunk"
    );
}
