//! Formatting one access-log line into a reused buffer, without allocating: the combined line
//! (bytes outside printable ASCII, `"` and `\` escaped as `\xHH`, as nginx does) or a JSON
//! object (strings escaped per RFC 8259; bytes ≥ 0x80 as `\u00HH`). Times are UTC.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Field, Format};

/// What one line says about one request.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// When the answer was finished.
    pub time: SystemTime,
    /// Client IP as text.
    pub client: &'a [u8],
    /// Empty when the request head could not be parsed.
    pub method: &'a [u8],
    /// Request target as the client sent it (path and query); empty when unparsed.
    pub target: &'a [u8],
    /// "HTTP/1.1" or "HTTP/1.0"; empty when unparsed.
    pub version: &'a [u8],
    /// Status sent; 499 when the client left before any answer.
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    /// Address (IP:port) of the upstream server that answered.
    pub upstream: Option<SocketAddr>,
    /// Request sent → response head received, on the server that answered.
    pub upstream_time: Option<Duration>,
    /// Head parsed → answer finished.
    pub total_time: Duration,
    /// Cache outcome ("-" while there is no cache).
    pub cache: &'a str,
    pub consumer: Option<&'a str>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

/// Append one line (ending in '\n') for `e`.
pub fn line(out: &mut Vec<u8>, format: Format, fields: &[Field], e: &Entry<'_>) {
    match format {
        Format::Combined => combined(out, fields, e),
        Format::Json => json(out, fields, e),
    }
    out.push(b'\n');
}

fn combined(out: &mut Vec<u8>, fields: &[Field], e: &Entry<'_>) {
    text(out, e.client);
    out.extend_from_slice(b" - ");
    match e.consumer {
        Some(c) if !c.is_empty() => text(out, c.as_bytes()),
        _ => out.push(b'-'),
    }
    out.extend_from_slice(b" [");
    clf_time(out, e.time);
    out.extend_from_slice(b"] \"");
    if e.method.is_empty() {
        out.push(b'-');
    } else {
        text(out, e.method);
        out.push(b' ');
        text(out, e.target);
        out.push(b' ');
        text(out, e.version);
    }
    out.extend_from_slice(b"\" ");
    number(out, u64::from(e.status));
    out.push(b' ');
    number(out, e.bytes);
    for v in [e.referer, e.user_agent] {
        out.extend_from_slice(b" \"");
        match v {
            Some(v) => text(out, v),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    for f in fields.iter().filter(|f| !f.in_combined()) {
        out.push(b' ');
        out.extend_from_slice(f.name().as_bytes());
        out.push(b'=');
        match f {
            Field::Upstream => match e.upstream {
                Some(a) => {
                    let _ = write!(out, "{a}");
                }
                None => out.push(b'-'),
            },
            Field::UpstreamMs => match e.upstream_time {
                Some(d) => millis(out, d),
                None => out.push(b'-'),
            },
            Field::TotalMs => millis(out, e.total_time),
            Field::Cache => text(out, e.cache.as_bytes()),
            _ => {}
        }
    }
}

fn json(out: &mut Vec<u8>, fields: &[Field], e: &Entry<'_>) {
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(f.name().as_bytes());
        out.extend_from_slice(b"\":");
        match f {
            Field::Time => {
                out.push(b'"');
                iso_time(out, e.time);
                out.push(b'"');
            }
            Field::Client => json_str(out, Some(e.client)),
            Field::Method => json_str(out, (!e.method.is_empty()).then_some(e.method)),
            Field::Path => json_str(out, (!e.method.is_empty()).then_some(e.target)),
            Field::Status => number(out, u64::from(e.status)),
            Field::Bytes => number(out, e.bytes),
            Field::Upstream => match e.upstream {
                Some(a) => {
                    let _ = write!(out, "\"{a}\"");
                }
                None => out.extend_from_slice(b"null"),
            },
            Field::UpstreamMs => match e.upstream_time {
                Some(d) => millis(out, d),
                None => out.extend_from_slice(b"null"),
            },
            Field::TotalMs => millis(out, e.total_time),
            Field::Cache => json_str(out, Some(e.cache.as_bytes())),
            Field::Consumer => json_str(out, e.consumer.map(str::as_bytes)),
        }
    }
    out.push(b'}');
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Milliseconds with three decimals: `12.345`.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
    number(out, us / 1000);
    out.push(b'.');
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Printable ASCII as is; `"`, `\`, controls and bytes ≥ 0x80 as `\xHH`.
fn text(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

fn json_str(out: &mut Vec<u8>, v: Option<&[u8]>) {
    let Some(v) = v else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.push(b'"');
}

/// UTC calendar fields of `t`: (year, month 1..=12, day, hour, minute, second, millis).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

fn two(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// `28/Nov/2026:04:09:14 +0000`
fn clf_time(out: &mut Vec<u8>, t: SystemTime) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (y, mo, d, h, mi, s, _) = civil(t);
    two(out, d);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(mo - 1) as usize]);
    out.push(b'/');
    number(out, y.max(0) as u64);
    out.push(b':');
    two(out, h);
    out.push(b':');
    two(out, mi);
    out.push(b':');
    two(out, s);
    out.extend_from_slice(b" +0000");
}

/// `2026-11-28T04:09:14.123Z`
fn iso_time(out: &mut Vec<u8>, t: SystemTime) {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    number(out, y.max(0) as u64);
    out.push(b'-');
    two(out, mo);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, h);
    out.push(b':');
    two(out, mi);
    out.push(b':');
    two(out, s);
    out.push(b'.');
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            // 2026-11-28T04:09:14.123Z
            time: UNIX_EPOCH + Duration::from_millis(1_795_838_954_123),
            client: b"10.0.0.1",
            method: b"GET",
            target: b"/a?b=\"c\"",
            version: b"HTTP/1.1",
            status: 200,
            bytes: 12,
            upstream: Some("127.0.0.1:9001".parse().unwrap()),
            upstream_time: Some(Duration::from_micros(1234)),
            total_time: Duration::from_micros(2500),
            cache: "-",
            consumer: None,
            referer: None,
            user_agent: Some(b"curl/8\xff"),
        }
    }

    #[test]
    fn combined_line() {
        let mut out = Vec::new();
        line(&mut out, Format::Combined, &Field::ALL, &entry());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.0.0.1 - - [28/Nov/2026:04:09:14 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 12 \
\"-\" \"curl/8\\xff\" upstream=127.0.0.1:9001 upstream_ms=1.234 total_ms=2.500 cache=-\n"
        );
    }

    #[test]
    fn json_line_parses() {
        let mut out = Vec::new();
        line(&mut out, Format::Json, &Field::ALL, &entry());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-11-28T04:09:14.123Z");
        assert_eq!(v["path"], "/a?b=\"c\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream_ms"], 1.234);
        assert_eq!(v["consumer"], serde_json::Value::Null);
        let mut short = Vec::new();
        line(&mut short, Format::Json, &[Field::Status], &entry());
        assert_eq!(short, b"{\"status\":200}\n");
    }

    #[test]
    fn calendar() {
        let at = |s: u64| {
            let mut o = Vec::new();
            iso_time(&mut o, UNIX_EPOCH + Duration::from_secs(s));
            String::from_utf8(o).unwrap()
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59.000Z");
    }
}
