//! The DNS wire format (RFC 1035, EDNS0 from RFC 6891), only as much as discovery needs: a
//! query for one name and type, and the A, AAAA and SRV records of an answer. Pure code over
//! byte slices; every read is bounds-checked and compression pointers may only point backwards,
//! so a hostile or broken answer is an error, never a panic or a loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
/// The UDP payload size we announce (EDNS0), so answers with many records are not truncated.
pub const UDP_PAYLOAD_MAX: usize = 4096;
/// Records read from one answer (a 4 KiB message holds fewer anyway).
const RECORDS_MAX: usize = 512;

/// One record of interest from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An A or AAAA record: owner name (lower case) and address.
    Addr(String, IpAddr),
    Srv(Srv),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Lower case, without the final dot.
    pub target: String,
}

/// A parsed answer: the answer and additional sections' records of interest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub records: Vec<Record>,
    /// The name does not exist (NXDOMAIN): no records, not an error.
    pub nxdomain: bool,
}

/// Encode a recursive query for `name` of type `qtype` with EDNS0.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional (OPT)
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(format!("\"{name}\" is not a DNS name"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("\"{name}\" is not a DNS name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]); // class IN
    out.push(0); // OPT: root name
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&(UDP_PAYLOAD_MAX as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // ttl (ext. rcode, flags), rdlen 0
    Ok(out)
}

/// The id of a message (0 when too short).
pub fn id_of(msg: &[u8]) -> u16 {
    match msg {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// Parse the answer to query `id`. Truncated answers (TC) are refused: a partial list of
/// servers would remove the others.
pub fn parse(msg: &[u8], id: u16) -> Result<Answer, String> {
    let mut r = Reader { msg, at: 0 };
    let hid = r.u16()?;
    let flags = r.u16()?;
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    if hid != id || flags & 0x8000 == 0 {
        return Err("not the answer to our query".into());
    }
    if flags & 0x0200 != 0 {
        return Err("answer truncated (TC)".into());
    }
    match flags & 0x000f {
        0 => {}
        3 => {
            return Ok(Answer {
                records: Vec::new(),
                nxdomain: true,
            })
        }
        rcode => return Err(format!("resolver answered rcode {rcode}")),
    }
    for _ in 0..qd {
        r.name()?;
        r.take(4)?;
    }
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    let mut records = Vec::new();
    for i in 0..total.min(RECORDS_MAX) {
        let owner = r.name()?;
        let (rtype, _class, _ttl, len) = (r.u16()?, r.u16()?, r.u32()?, r.u16()?);
        let start = r.at;
        let data = r.take(usize::from(len))?;
        let in_authority = i >= usize::from(an) && i < usize::from(an) + usize::from(ns);
        if in_authority {
            continue;
        }
        match (rtype, data.len()) {
            (TYPE_A, 4) => {
                let ip = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
                records.push(Record::Addr(owner, IpAddr::V4(ip)));
            }
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                records.push(Record::Addr(owner, IpAddr::V6(Ipv6Addr::from(b))));
            }
            (TYPE_SRV, n) if n >= 7 => {
                let mut s = Reader { msg, at: start };
                let (priority, weight, port) = (s.u16()?, s.u16()?, s.u16()?);
                let target = s.name()?;
                records.push(Record::Srv(Srv {
                    priority,
                    weight,
                    port,
                    target,
                }));
            }
            _ => {}
        }
    }
    Ok(Answer {
        records,
        nxdomain: false,
    })
}

struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.msg.len());
        let end = end.ok_or("answer cut short")?;
        let s = &self.msg[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name, lower case, dot-separated, without the final dot. Pointers
    /// must point before the label that holds them, so following them always ends.
    fn name(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut pos = self.at;
        let mut resume: Option<usize> = None;
        loop {
            let len = *self.msg.get(pos).ok_or("name cut short")?;
            match len {
                0 => {
                    pos += 1;
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or("name cut short")?;
                    let target = usize::from(u16::from_be_bytes([l & 0x3f, lo]));
                    if target >= pos {
                        return Err("name pointer does not point backwards".into());
                    }
                    resume.get_or_insert(pos + 2);
                    pos = target;
                }
                l if l & 0xc0 == 0 => {
                    let l = usize::from(l);
                    let label = self.msg.get(pos + 1..pos + 1 + l).ok_or("name cut short")?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                    if out.len() > 255 {
                        return Err("name too long".into());
                    }
                    pos += 1 + l;
                }
                _ => return Err("unknown label type".into()),
            }
        }
        self.at = resume.unwrap_or(pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `q` with the given raw records appended (header counts set by the caller).
    fn answer_to(q: &[u8], an: u16, ar: u16, flags: u16, records: &[u8]) -> Vec<u8> {
        let qend = q.len() - 11; // drop the OPT record
        let mut m = q[..qend].to_vec();
        m[2..4].copy_from_slice(&(0x8180 | flags).to_be_bytes());
        m[6..8].copy_from_slice(&an.to_be_bytes());
        m[8..10].copy_from_slice(&0u16.to_be_bytes());
        m[10..12].copy_from_slice(&ar.to_be_bytes());
        m.extend_from_slice(records);
        m
    }

    fn rr(name: &[u8], rtype: u16, data: &[u8]) -> Vec<u8> {
        let mut v = name.to_vec();
        v.extend_from_slice(&rtype.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn queries_carry_the_name_and_edns() {
        let q = query(0x1234, "svc.example.", TYPE_SRV).unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert!(q.windows(13).any(|w| w == b"\x03svc\x07example\x00"));
        assert_eq!(&q[q.len() - 11..q.len() - 8], &[0, 0, 41]);
        assert!(query(1, "a..b", TYPE_A).is_err());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    #[test]
    fn parses_addresses_and_srv_with_compression() {
        let q = query(7, "svc.test", TYPE_SRV).unwrap();
        // Pointer 0xc00c = the question's name at offset 12.
        let mut srv = vec![0, 1, 0, 5, 0x1f, 0x90];
        srv.extend_from_slice(b"\x02a1\xc0\x0c"); // a1.svc.test
        let mut recs = rr(b"\xc0\x0c", TYPE_SRV, &srv);
        let target_at = (q.len() - 11 + recs.len() - 5) as u8; // where "a1" starts
        recs.extend(rr(&[0xc0, target_at], TYPE_A, &[127, 0, 0, 3]));
        recs.extend(rr(&[0xc0, target_at], TYPE_AAAA, &[0; 16]));
        let a = parse(&answer_to(&q, 1, 2, 0, &recs), 7).unwrap();
        assert_eq!(
            a.records[0],
            Record::Srv(Srv {
                priority: 1,
                weight: 5,
                port: 8080,
                target: "a1.svc.test".into()
            })
        );
        assert_eq!(
            a.records[1],
            Record::Addr("a1.svc.test".into(), "127.0.0.3".parse().unwrap())
        );
        assert_eq!(a.records.len(), 3);
    }

    #[test]
    fn refuses_broken_answers_without_panicking() {
        let q = query(9, "x.test", TYPE_A).unwrap();
        let good = answer_to(&q, 1, 0, 0, &rr(b"\xc0\x0c", TYPE_A, &[1, 2, 3, 4]));
        assert_eq!(parse(&good, 9).unwrap().records.len(), 1);
        assert!(parse(&good, 10).is_err(), "other id");
        assert!(
            parse(&answer_to(&q, 0, 0, 0x0200, &[]), 9).is_err(),
            "truncated"
        );
        assert!(parse(&answer_to(&q, 0, 0, 2, &[]), 9).is_err(), "SERVFAIL");
        assert!(parse(&answer_to(&q, 0, 0, 3, &[]), 9).unwrap().nxdomain);
        // A pointer to itself, and one forwards.
        let looped = answer_to(
            &q,
            1,
            0,
            0,
            &rr(&[0xc0, (q.len() - 11) as u8], TYPE_A, &[1, 2, 3, 4]),
        );
        assert!(parse(&looped, 9).is_err());
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], 9); // never panics
        }
        let mut noise = good.clone();
        for i in 12..noise.len() {
            noise[i] = noise[i].wrapping_mul(31).wrapping_add(7);
            let _ = parse(&noise, 9);
        }
    }
}
