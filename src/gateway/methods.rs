//! `MethodSet`: a set of request methods as a bit mask, for route `methods`, the `Allow` field
//! of a 405 and CORS `allow_methods`. GET implies HEAD (RFC 9110 §9.3.2).

use crate::http::request::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MethodSet(u16);

/// Methods a route may list, in the order `Allow` names them.
const NAMES: [(&str, Method); 8] = [
    ("GET", Method::Get),
    ("HEAD", Method::Head),
    ("POST", Method::Post),
    ("PUT", Method::Put),
    ("PATCH", Method::Patch),
    ("DELETE", Method::Delete),
    ("OPTIONS", Method::Options),
    ("TRACE", Method::Trace),
];

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);

    fn bit(m: Method) -> u16 {
        NAMES
            .iter()
            .position(|(_, x)| *x == m)
            .map_or(0, |i| 1 << i)
    }

    /// Parse config names (case-insensitive). `Err(name)` for an unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<MethodSet, String> {
        let mut set = MethodSet::EMPTY;
        for n in names {
            let n = n.as_ref();
            let Some((_, m)) = NAMES.iter().find(|(x, _)| x.eq_ignore_ascii_case(n)) else {
                return Err(n.to_string());
            };
            set.0 |= Self::bit(*m);
            if *m == Method::Get {
                set.0 |= Self::bit(Method::Head);
            }
        }
        Ok(set)
    }

    pub fn contains(self, m: Method) -> bool {
        self.0 & Self::bit(m) != 0
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// "GET, HEAD, POST" into `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        let mut first = true;
        for (i, (name, _)) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let s = MethodSet::parse(&["get", "POST"]).unwrap();
        assert!(s.contains(Method::Head) && s.contains(Method::Post));
        assert!(!s.contains(Method::Delete) && !s.contains(Method::Other));
        let mut out = Vec::new();
        s.write(&mut out);
        assert_eq!(out, b"GET, HEAD, POST");
        assert_eq!(MethodSet::parse(&["BREW"]), Err("BREW".into()));
    }
}
