//! Access rules by client IP: CIDR `allow` and `deny` lists, compiled at load into sorted,
//! merged address ranges so that a check is two binary searches whatever the list length.
//! Used per listener (checked at accept, before a byte is read) and per route (the access
//! phase: 403). The client is the TCP peer, never a forwarded-for field.

use std::net::IpAddr;

use ipnet::IpNet;

/// Most CIDR entries in one list: ranges stay small and a mistaken generator is caught at load.
pub const CIDRS_MAX: usize = 100_000;

/// Sorted, non-overlapping, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// A listener's or a route's `allow` and `deny` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    /// Empty: every address is allowed (unless denied).
    allow: Ranges,
    allow_given: bool,
    deny: Ranges,
}

impl IpRules {
    /// Build from CIDR texts (`10.0.0.0/8`, `::1/128`, or a plain address meaning one host).
    /// Errors name the offending entry.
    pub fn parse(allow: &[String], deny: &[String]) -> Result<IpRules, String> {
        Ok(IpRules {
            allow: Ranges::parse(allow, "allow")?,
            allow_given: !allow.is_empty(),
            deny: Ranges::parse(deny, "deny")?,
        })
    }

    /// No rule at all: every client passes (callers skip the check).
    pub fn is_empty(&self) -> bool {
        !self.allow_given && self.deny.v4.is_empty() && self.deny.v6.is_empty()
    }

    /// Whether `ip` may pass: not in `deny`, and in `allow` when `allow` is given. A deny
    /// entry wins over an allow entry (`allow = ["10.0.0.0/8"]`, `deny = ["10.0.0.66/32"]`).
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.contains(ip) {
            return false;
        }
        !self.allow_given || self.allow.contains(ip)
    }
}

impl Ranges {
    fn parse(list: &[String], what: &str) -> Result<Ranges, String> {
        if list.len() > CIDRS_MAX {
            return Err(format!("more than {CIDRS_MAX} entries ({what})"));
        }
        let mut out = Ranges::default();
        for text in list {
            let net: IpNet = match text.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("\"{text}\" is not an IP address or CIDR")),
                },
            };
            if net.addr() != net.network() {
                return Err(format!(
                    "\"{text}\" has host bits set (did you mean {}?)",
                    net.trunc()
                ));
            }
            match net {
                IpNet::V4(n) => out
                    .v4
                    .push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => out
                    .v6
                    .push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        merge(&mut out.v4);
        merge(&mut out.v6);
        Ok(out)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }
}

/// Sort and merge overlapping or adjacent ranges.
fn merge<T: Copy + Ord + num_like::Succ>(r: &mut Vec<(T, T)>) {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for &(lo, hi) in r.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1.succ_saturating() => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *r = out;
}

fn within<T: Copy + Ord>(r: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x.
    let i = r.partition_point(|&(lo, _)| lo <= x);
    i > 0 && x <= r[i - 1].1
}

mod num_like {
    pub trait Succ {
        fn succ_saturating(self) -> Self;
    }
    impl Succ for u32 {
        fn succ_saturating(self) -> u32 {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ_saturating(self) -> u128 {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> IpRules {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        IpRules::parse(&s(allow), &s(deny)).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allow_and_deny() {
        let r = rules(
            &["10.0.0.0/8", "192.168.1.0/24", "::1/128"],
            &["10.0.0.66/32"],
        );
        assert!(r.permits(ip("10.1.2.3")));
        assert!(r.permits(ip("192.168.1.255")));
        assert!(r.permits(ip("::1")));
        assert!(!r.permits(ip("10.0.0.66")));
        assert!(!r.permits(ip("11.0.0.1")));
        assert!(!r.permits(ip("192.168.2.0")));
        assert!(!r.permits(ip("::2")));
        // An IPv4-mapped IPv6 peer (dual-stack listener) is checked as IPv4.
        assert!(r.permits(ip("::ffff:10.9.9.9")));
        assert!(!r.permits(ip("::ffff:10.0.0.66")));
    }

    #[test]
    fn deny_only_and_empty() {
        let r = rules(&[], &["127.0.0.2", "0.0.0.0/0"]);
        assert!(!r.permits(ip("1.2.3.4")));
        assert!(r.permits(ip("::1")));
        assert!(rules(&[], &[]).is_empty());
        assert!(rules(&[], &[]).permits(ip("1.1.1.1")));
    }

    #[test]
    fn ranges_merge() {
        let r = rules(
            &["10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.2.0/24"],
            &[],
        );
        assert_eq!(r.allow.v4.len(), 2);
        assert!(r.permits(ip("10.0.0.200")));
        assert!(!r.permits(ip("10.0.1.1")));
        assert!(r.permits(ip("10.0.2.1")));
    }

    #[test]
    fn bad_entries() {
        let bad = |s: &str| IpRules::parse(&[s.to_string()], &[]).unwrap_err();
        assert!(bad("10.0.0.1/8").contains("host bits"));
        assert!(bad("10.0.0.0/33").contains("not an IP"));
        assert!(bad("example.com").contains("not an IP"));
    }
}
