//! Response compression: which coding a client gets (`Accept-Encoding` with q-values against
//! the enabled codings), whether a response may be compressed at all (status, type, size, not
//! already encoded, no `no-transform`), and the streaming encoders (`encoder.rs`) the body
//! relay runs the body through. Pure decisions here; the relay and the proxy apply them.

mod encoder;

pub use encoder::Encoder;

use crate::cache::rules::{self, Directives};
use crate::http::response::ResponseHead;
use crate::http::{BodyKind, HeaderSpan};

/// A content coding coregate produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Coding {
    #[default]
    Identity,
    Gzip,
    Br,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
        }
    }

    /// The `Content-Encoding` field line for it (none for identity).
    pub fn field(self) -> &'static [u8] {
        match self {
            Coding::Identity => b"",
            Coding::Gzip => b"Content-Encoding: gzip\r\n",
            Coding::Br => b"Content-Encoding: br\r\n",
        }
    }

    pub fn parse(s: &str) -> Option<Coding> {
        match s {
            "gzip" => Some(Coding::Gzip),
            "br" => Some(Coding::Br),
            _ => None,
        }
    }
}

/// `[compression]`, built at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionSettings {
    /// flate2 level, 1..=9.
    pub gzip_level: u32,
    /// brotli quality, 0..=11.
    pub brotli_level: u32,
    /// Bodies with a smaller Content-Length are sent as they are.
    pub min_bytes: u64,
    /// Media types compressed: (type, subtype), lower-case; subtype `*` matches any.
    pub types: Vec<(String, String)>,
    /// Codings offered, most preferred first (on equal q-values).
    pub encodings: Vec<Coding>,
}

/// Field line added to every response that coregate may compress for some clients.
pub const VARY_FIELD: &[u8] = b"Vary: Accept-Encoding\r\n";

/// The coding a request gets: the enabled coding with the highest q-value above 0 in its
/// `Accept-Encoding` (`*` stands for codings it does not name; `x-gzip` is gzip); on a tie the
/// first in `encodings`. `Identity` when none is acceptable or there is no field.
pub fn negotiate(buf: &[u8], headers: &[HeaderSpan], encodings: &[Coding]) -> Coding {
    let mut best = (Coding::Identity, 0u16);
    let fields = || {
        headers
            .iter()
            .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"accept-encoding"))
            .flat_map(|h| h.value.get(buf).split(|&b| b == b','))
    };
    for &coding in encodings {
        let (mut named, mut star) = (None, None);
        for item in fields() {
            let mut parts = item.split(|&b| b == b';');
            let name = rules::trim(parts.next().unwrap_or_default());
            let q = parts
                .find_map(|p| {
                    let p = rules::trim(p);
                    (p.len() > 2 && p[..2].eq_ignore_ascii_case(b"q=")).then(|| qvalue(&p[2..]))
                })
                .unwrap_or(Some(1000));
            let is_it = name.eq_ignore_ascii_case(coding.token().as_bytes())
                || (coding == Coding::Gzip && name.eq_ignore_ascii_case(b"x-gzip"));
            if is_it {
                named = Some(q.unwrap_or(0));
            } else if name == b"*" {
                star = Some(q.unwrap_or(0));
            }
        }
        let q = named.or(star).unwrap_or(0);
        if q > best.1 {
            best = (coding, q);
        }
    }
    best.0
}

/// A qvalue (`0`, `0.5`, `1`, `1.000`) in thousandths; `None` if malformed.
fn qvalue(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

/// Whether coregate may compress this response for a client that accepts a coding: a body of
/// a listed media type, at least `min_bytes` when its length is known, not already encoded
/// (any `Content-Encoding`), not a range (206, `Content-Range`), and no `no-transform`.
pub fn compressible(
    resp: &ResponseHead,
    buf: &[u8],
    headers: &[HeaderSpan],
    cc: &Directives,
    settings: &CompressionSettings,
) -> bool {
    let length_ok = match resp.body {
        BodyKind::None => false,
        BodyKind::Length(n) => n >= settings.min_bytes,
        BodyKind::Chunked | BodyKind::UntilClose => true,
    };
    if !length_ok || resp.status == 206 || cc.no_transform {
        return false;
    }
    if rules::field(buf, headers, b"content-encoding").is_some()
        || rules::field(buf, headers, b"content-range").is_some()
    {
        return false;
    }
    let Some(ct) = rules::field(buf, headers, b"content-type") else {
        return false;
    };
    type_listed(ct, &settings.types)
}

/// `text/html; charset=utf-8` against (type, subtype) patterns.
fn type_listed(content_type: &[u8], types: &[(String, String)]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    let media = rules::trim(media);
    let Some(slash) = media.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (t, sub) = (&media[..slash], rules::trim(&media[slash + 1..]));
    types.iter().any(|(pt, ps)| {
        t.eq_ignore_ascii_case(pt.as_bytes())
            && (ps == "*" || sub.eq_ignore_ascii_case(ps.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response;

    fn neg(ae: &str, enc: &[Coding]) -> Coding {
        let raw = format!("HTTP/1.1 200 OK\r\nAccept-Encoding: {ae}\r\n\r\n").into_bytes();
        let mut h = Vec::new();
        response::parse(&raw, true, 8192, &mut h).unwrap().unwrap();
        negotiate(&raw, &h, enc)
    }

    #[test]
    fn negotiation_by_q_then_preference() {
        let both = [Coding::Br, Coding::Gzip];
        assert_eq!(neg("gzip, deflate, br", &both), Coding::Br);
        assert_eq!(
            neg("gzip, deflate, br", &[Coding::Gzip, Coding::Br]),
            Coding::Gzip
        );
        assert_eq!(neg("gzip;q=1.0, br;q=0.5", &both), Coding::Gzip);
        assert_eq!(neg("br;q=0, gzip;q=0.001", &both), Coding::Gzip);
        assert_eq!(neg("br;q=0, gzip;q=0", &both), Coding::Identity);
        assert_eq!(neg("identity", &both), Coding::Identity);
        assert_eq!(neg("*", &both), Coding::Br);
        assert_eq!(neg("*;q=0.5, br;q=0", &both), Coding::Gzip);
        assert_eq!(neg("X-GZIP", &both), Coding::Gzip);
        assert_eq!(neg("gzip;q=2", &both), Coding::Identity);
        assert_eq!(neg("br", &[Coding::Gzip]), Coding::Identity);
    }

    #[test]
    fn media_types() {
        let types = vec![
            ("text".to_string(), "*".to_string()),
            ("application".to_string(), "json".to_string()),
        ];
        assert!(type_listed(b"text/html; charset=utf-8", &types));
        assert!(type_listed(b"Application/JSON", &types));
        assert!(!type_listed(b"application/octet-stream", &types));
        assert!(!type_listed(b"image/png", &types));
        assert!(!type_listed(b"garbage", &types));
    }
}
