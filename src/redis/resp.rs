//! RESP2, the Redis wire protocol: commands encoded as arrays of bulk strings, replies parsed
//! from a byte slice with every length bounded. Pure code: no I/O, no allocation beyond the
//! reply itself (replies coregate reads are a few small integers).

/// Largest bulk string accepted in a reply (script SHA1s and short error texts are all we read).
const BULK_BYTES_MAX: usize = 64 * 1024;
/// Most elements in one reply array, and deepest nesting.
const ARRAY_LEN_MAX: usize = 64;
const DEPTH_MAX: usize = 4;

/// One parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// The reply bytes break the protocol (the connection cannot be used any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// Append a command (`args[0]` is its name) to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parse one reply from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// reply and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if depth > DEPTH_MAX {
        return Err(ProtocolError("reply nested too deep"));
    }
    let Some((line, next)) = line(buf, at)? else {
        return Ok(None);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(ProtocolError("empty reply line"));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), next))),
        b'-' => Ok(Some((Reply::Error(text()), next))),
        b':' => Ok(Some((Reply::Int(int(rest)?), next))),
        b'$' => bulk(buf, next, int(rest)?),
        b'*' => array(buf, next, int(rest)?, depth),
        _ => Err(ProtocolError("unknown reply type")),
    }
}

fn bulk(buf: &[u8], at: usize, len: i64) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if len < 0 {
        return Ok(Some((Reply::Bulk(None), at)));
    }
    let len = usize::try_from(len).map_err(|_| ProtocolError("bulk length"))?;
    if len > BULK_BYTES_MAX {
        return Err(ProtocolError("bulk string too large"));
    }
    let end = at + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError("bulk string without CRLF"));
    }
    Ok(Some((Reply::Bulk(Some(buf[at..end].to_vec())), end + 2)))
}

fn array(
    buf: &[u8],
    mut at: usize,
    len: i64,
    depth: usize,
) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if len < 0 {
        return Ok(Some((Reply::Array(None), at)));
    }
    let len = usize::try_from(len).map_err(|_| ProtocolError("array length"))?;
    if len > ARRAY_LEN_MAX {
        return Err(ProtocolError("array too long"));
    }
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        let Some((item, next)) = parse_at(buf, at, depth + 1)? else {
            return Ok(None);
        };
        items.push(item);
        at = next;
    }
    Ok(Some((Reply::Array(Some(items)), at)))
}

/// The line starting at `at` (without CRLF) and where the next one starts.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or(&[]);
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(n) => Ok(Some((&rest[..n], at + n + 2))),
        None if rest.len() > BULK_BYTES_MAX => Err(ProtocolError("reply line too long")),
        None => Ok(None),
    }
}

fn int(digits: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("not an integer"))
}

impl Reply {
    /// The integers of an array reply (a Lua table of numbers), or `None`.
    pub fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Reply::Array(Some(items)) => items
                .iter()
                .map(|i| match i {
                    Reply::Int(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"EVALSHA", b"ab", b"1", b"k\r\n"]);
        assert_eq!(
            out,
            b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\nk\r\n\r\n"
        );
    }

    #[test]
    fn parses_every_reply_kind_and_waits_for_more() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Simple("OK".into())),
            (b"-NOSCRIPT x\r\n", Reply::Error("NOSCRIPT x".into())),
            (b":-12\r\n", Reply::Int(-12)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(Some(b"a\r\n".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n:1\r\n*1\r\n$0\r\n\r\n",
                Reply::Array(Some(vec![
                    Reply::Int(1),
                    Reply::Array(Some(vec![Reply::Bulk(Some(vec![]))])),
                ])),
            ),
        ];
        for (bytes, want) in cases {
            let (got, used) = parse(bytes).unwrap().unwrap();
            assert_eq!(&got, want);
            assert_eq!(used, bytes.len());
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "{cut} of {bytes:?}");
            }
        }
        let ints = parse(b"*3\r\n:5\r\n:0\r\n:7\r\n").unwrap().unwrap().0;
        assert_eq!(ints.ints(), Some(vec![5, 0, 7]));
        assert_eq!(Reply::Int(1).ints(), None);
    }

    #[test]
    fn refuses_what_breaks_the_protocol() {
        for bad in [
            &b"?x\r\n"[..],
            b"\r\n",
            b":12a\r\n",
            b"$3\r\nabcd\r\n",
            b"$99999999\r\n",
            b"*99999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&vec![b'+'; BULK_BYTES_MAX + 10]).is_err());
    }
}
