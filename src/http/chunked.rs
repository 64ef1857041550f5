//! The chunked transfer coding (RFC 9112 §7.1), decoded strictly and re-encoded by coregate:
//! hex sizes of at most 16 digits, CRLF exactly (a bare LF or CR is an error), extensions
//! bounded and dropped, trailers bounded and dropped.

/// Bytes allowed in one chunk-size line after the size (extensions).
pub const EXTENSION_BYTES_MAX: usize = 4096;
/// Bytes allowed in the whole trailer section.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a hex digit where the size is, or more than 16 digits.
    InvalidSize,
    /// An extension with a control byte, or longer than the bound.
    InvalidExtension,
    /// A line not ended by CRLF, or data not followed by CRLF.
    InvalidLineEnd,
    /// A malformed or oversized trailer section.
    InvalidTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` so far.
    Size {
        digits: u8,
    },
    /// After the size: optional whitespace then `;` extensions, up to CR.
    Extension {
        bytes: usize,
        in_ext: bool,
    },
    /// Saw CR after the size line; need LF.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After data: need CR, then LF.
    DataCr,
    DataLf,
    /// After the last chunk: trailer field lines; `line` = bytes in the current line,
    /// `in_name` = still before the line's colon.
    Trailer {
        line: usize,
        in_name: bool,
    },
    TrailerLf {
        line: usize,
    },
    Done,
}

/// Incremental decoder. Feed it bytes with `decode`; it returns how many it consumed and the
/// range of chunk data among them, one piece at a time.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// Size of the current chunk, then bytes of it still to come.
    remaining: u64,
    trailer_bytes: usize,
}

/// One step of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Input bytes used (framing and data).
    pub consumed: usize,
    /// Chunk data within the input, if this step reached some.
    pub data: Option<std::ops::Range<usize>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume framing bytes from `input` until a piece of data, the end, or the input runs out.
    /// A step with `consumed == 0` needs more input. Never consumes past the final CRLF.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.remaining) as usize;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step {
                        consumed: i + take,
                        data: Some(i..i + take),
                    });
                }
                State::Done => break,
                _ => self.framing_byte(b)?,
            }
            i += 1;
            if self.state == State::Done {
                break;
            }
        }
        Ok(Step {
            consumed: i,
            data: None,
        })
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::Size { digits } => match hex(b) {
                Some(v) if digits < 16 => {
                    self.remaining = (self.remaining << 4) | u64::from(v);
                    State::Size { digits: digits + 1 }
                }
                Some(_) => return Err(ChunkError::InvalidSize),
                None if digits == 0 => return Err(ChunkError::InvalidSize),
                None => return self.after_size(b),
            },
            State::Extension { bytes, in_ext } => {
                if bytes >= EXTENSION_BYTES_MAX {
                    return Err(ChunkError::InvalidExtension);
                }
                match b {
                    b'\r' => State::SizeLf,
                    b';' => State::Extension {
                        bytes: bytes + 1,
                        in_ext: true,
                    },
                    b' ' | b'\t' => State::Extension {
                        bytes: bytes + 1,
                        in_ext,
                    },
                    // Extension names and values: visible ASCII and obs-text; `=` and quotes
                    // included. Before the first `;` only whitespace may follow the size.
                    0x21..=0x7e | 0x80..=0xff if in_ext => State::Extension {
                        bytes: bytes + 1,
                        in_ext,
                    },
                    b'\n' => return Err(ChunkError::InvalidLineEnd),
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::InvalidLineEnd);
                }
                if self.remaining == 0 {
                    State::Trailer {
                        line: 0,
                        in_name: true,
                    }
                } else {
                    State::Data
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { digits: 0 },
            State::DataCr | State::DataLf => return Err(ChunkError::InvalidLineEnd),
            State::Trailer { line, in_name } => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > TRAILER_BYTES_MAX {
                    return Err(ChunkError::InvalidTrailer);
                }
                trailer_byte(b, line, in_name)?
            }
            State::TrailerLf { line } => {
                if b != b'\n' {
                    return Err(ChunkError::InvalidLineEnd);
                }
                if line == 0 {
                    State::Done
                } else {
                    State::Trailer {
                        line: 0,
                        in_name: true,
                    }
                }
            }
            State::Data | State::Done => unreachable!("handled in decode"),
        };
        Ok(())
    }

    fn after_size(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match b {
            b'\r' => State::SizeLf,
            b';' => State::Extension {
                bytes: 1,
                in_ext: true,
            },
            b' ' | b'\t' => State::Extension {
                bytes: 1,
                in_ext: false,
            },
            b'\n' => return Err(ChunkError::InvalidLineEnd),
            _ => return Err(ChunkError::InvalidSize),
        };
        Ok(())
    }
}

/// One byte of a trailer section: each line must be a field line, `token ":" value`
/// (RFC 9112 §7.1.2), so a request line or a folded line there is an error, not a trailer.
fn trailer_byte(b: u8, line: usize, in_name: bool) -> Result<State, ChunkError> {
    Ok(match b {
        b'\r' if in_name && line > 0 => return Err(ChunkError::InvalidTrailer),
        b'\r' => State::TrailerLf { line },
        b'\n' => return Err(ChunkError::InvalidLineEnd),
        b':' if in_name && line > 0 => State::Trailer {
            line: line + 1,
            in_name: false,
        },
        _ if in_name && is_tchar(b) => State::Trailer {
            line: line + 1,
            in_name: true,
        },
        b'\t' | 0x20..=0x7e | 0x80..=0xff if !in_name => State::Trailer {
            line: line + 1,
            in_name: false,
        },
        _ => return Err(ChunkError::InvalidTrailer),
    })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Append one chunk (`len` > 0) header: the size in hex and CRLF.
pub fn write_size(out: &mut Vec<u8>, len: usize) {
    debug_assert!(len > 0, "a zero-size chunk ends the body");
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut n = len;
    let mut i = tmp.len();
    while n > 0 {
        i -= 1;
        tmp[i] = DIGITS[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&tmp[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Append a whole chunk.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode all of `input` in pieces of `step` bytes; returns the data.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::new();
        let mut data = Vec::new();
        let mut pos = 0;
        let mut avail = step.min(input.len());
        while !d.is_done() {
            let s = d.decode(&input[pos..avail])?;
            if let Some(r) = s.data.clone() {
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
        assert!(d.is_done(), "incomplete body");
        Ok((data, pos))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (data, used) = decode_all(body, step).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(&body[used..], b"NEXT");
        }
    }

    #[test]
    fn refuses_abuse() {
        use ChunkError::*;
        let cases: &[(&[u8], ChunkError)] = &[
            (b"\r\n", InvalidSize),
            (b" 5\r\nhello\r\n0\r\n\r\n", InvalidSize),
            (b"0x5\r\nhello\r\n0\r\n\r\n", InvalidSize),
            (b"+5\r\nhello\r\n0\r\n\r\n", InvalidSize),
            (b"-5\r\nhello\r\n0\r\n\r\n", InvalidSize),
            (b"5\nhello\r\n0\r\n\r\n", InvalidLineEnd),
            (b"5\r\nhello\n0\r\n\r\n", InvalidLineEnd),
            (b"5\r\nhelloXX0\r\n\r\n", InvalidLineEnd),
            (b"5\rXhello\r\n0\r\n\r\n", InvalidLineEnd),
            (b"5;a\nb\r\nhello\r\n0\r\n\r\n", InvalidLineEnd),
            (b"5;a\x00\r\nhello\r\n0\r\n\r\n", InvalidExtension),
            (b"5 x\r\nhello\r\n0\r\n\r\n", InvalidExtension),
            (b"10000000000000000\r\n", InvalidSize),
            (b"0\r\nX: a\nY: b\r\n\r\n", InvalidLineEnd),
            (b"0\r\n\n", InvalidLineEnd),
            // Trailer lines must be field lines: no request line, no fold, no empty name.
            (b"0\r\nGET / HTTP/1.1\r\n\r\n", InvalidTrailer),
            (b"0\r\nX: a\r\n folded\r\n\r\n", InvalidTrailer),
            (b"0\r\n: a\r\n\r\n", InvalidTrailer),
            (b"0\r\nX : a\r\n\r\n", InvalidTrailer),
            (b"0\r\nNoColon\r\n\r\n", InvalidTrailer),
        ];
        for (input, want) in cases {
            let mut d = Decoder::new();
            let mut pos = 0;
            let got = loop {
                match d.decode(&input[pos..]) {
                    Err(e) => break Some(e),
                    Ok(s) if s.consumed == 0 => break None,
                    Ok(s) => pos += s.consumed,
                }
            };
            assert_eq!(
                got,
                Some(*want),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn sixteen_digits_is_the_limit() {
        let mut d = Decoder::new();
        let s = d.decode(b"ffffffffffffffff\r\n").unwrap();
        assert_eq!(s.consumed, 18);
        assert_eq!(d.remaining, u64::MAX);
    }

    #[test]
    fn round_trip() {
        let payloads: [&[u8]; 3] = [b"a", &[7u8; 5000], b"0123456789abcdef0"];
        let mut encoded = Vec::new();
        for p in payloads {
            write_chunk(&mut encoded, p);
        }
        encoded.extend_from_slice(LAST_CHUNK);
        let (data, used) = decode_all(&encoded, 7).unwrap();
        assert_eq!(data, payloads.concat());
        assert_eq!(used, encoded.len());
    }

    #[test]
    fn trailers_are_bounded() {
        let mut body = b"0\r\n".to_vec();
        for _ in 0..2000 {
            body.extend_from_slice(b"X-Trailer: 0123456789\r\n");
        }
        body.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&body, 4096), Err(ChunkError::InvalidTrailer));
    }
}
