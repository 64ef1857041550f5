//! Unit tests of the RFC 9111 rules: directives, what is refused, lifetimes, Vary.

use super::*;
use crate::http::response;

fn head(fields: &str) -> (Vec<u8>, Vec<HeaderSpan>) {
    let raw = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n").into_bytes();
    let mut h = Vec::new();
    response::parse(&raw, false, 8192, &mut h).unwrap().unwrap();
    (raw, h)
}

fn life(fields: &str, ttl: u64) -> Option<Lifetime> {
    let (raw, h) = head(fields);
    let d = Directives::of(&raw, &h, b"cache-control");
    let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    lifetime(
        &raw,
        &h,
        &d,
        Duration::from_secs(ttl),
        Duration::from_secs(5),
        now,
    )
}

#[test]
fn directives() {
    let (raw, h) =
        head("Cache-Control: public, max-age=60\r\ncache-control: s-maxage=\"90\", No-Store\r\n");
    let d = Directives::of(&raw, &h, b"cache-control");
    assert!(d.public && d.no_store && !d.private);
    assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(90)));
    let (raw, h) = head("Cache-Control: max-age=abc, private\r\n");
    let d = Directives::of(&raw, &h, b"cache-control");
    assert_eq!(d.max_age, Some(0));
    assert!(d.private);
}

#[test]
fn freshness_order_and_age() {
    let f = |l: Option<Lifetime>| l.map(|l| l.fresh.as_secs());
    assert_eq!(
        f(life("Cache-Control: max-age=60, s-maxage=30\r\n", 0)),
        Some(30)
    );
    assert_eq!(
        f(life("Cache-Control: max-age=60\r\nAge: 20\r\n", 0)),
        Some(40)
    );
    assert_eq!(f(life("Cache-Control: max-age=60\r\nAge: 60\r\n", 0)), None);
    assert_eq!(f(life("", 0)), None);
    assert_eq!(f(life("", 15)), Some(15));
    assert_eq!(f(life("Cache-Control: max-age=0\r\n", 15)), None);
    let dated = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nExpires: Sun, 06 Nov 1994 08:50:37 GMT\r\n";
    assert_eq!(f(life(dated, 0)), Some(60));
    assert_eq!(f(life("Expires: 0\r\n", 99)), None);
    let l = life("Cache-Control: max-age=9, stale-if-error=50\r\n", 0).unwrap();
    assert_eq!(l.stale.as_secs(), 50);
    let l = life("Cache-Control: max-age=9, must-revalidate\r\n", 0).unwrap();
    assert_eq!(l.stale, Duration::ZERO);
}

#[test]
fn storability() {
    let names = VaryNames::Names(Vec::new());
    let d = Directives::default();
    assert_eq!(refuse_reason(200, &d, false, &names), None);
    assert!(refuse_reason(206, &d, false, &names).is_some());
    assert!(refuse_reason(500, &d, false, &names).is_some());
    assert!(refuse_reason(200, &d, true, &names).is_some());
    let public = Directives { public: true, ..d };
    assert_eq!(refuse_reason(200, &public, true, &names), None);
    for bad in [
        Directives { private: true, ..d },
        Directives {
            no_store: true,
            ..d
        },
        Directives {
            no_cache: true,
            ..d
        },
    ] {
        assert!(refuse_reason(200, &bad, false, &names).is_some());
    }
    assert!(refuse_reason(200, &d, false, &VaryNames::Any).is_some());
}

#[test]
fn vary() {
    let (raw, h) = head("Vary: Accept-Language, accept-language\r\nVary: X-Tenant\r\n");
    assert_eq!(
        vary_names(&raw, &h),
        VaryNames::Names(vec![
            b"accept-language".to_vec().into(),
            b"x-tenant".to_vec().into()
        ])
    );
    let (raw, h) = head("Vary: a, *\r\n");
    assert_eq!(vary_names(&raw, &h), VaryNames::Any);
    let (raw, h) = head("X-Tenant:  a \r\nX-Tenant: b\r\n");
    let mut out = Vec::new();
    vary_value(&raw, &h, b"x-tenant", &mut out);
    assert_eq!(out, b"a,b");
}

#[test]
fn request_directives() {
    let req = |fields: &str| {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}\r\n").into_bytes();
        let mut h = Vec::new();
        let limits = crate::config::Limits {
            header_bytes_max: 8192,
            header_count_max: 100,
            uri_bytes_max: 1024,
            body_bytes_max: 0,
            connections_per_shard_max: 1,
            connections_per_ip_max: 0,
            idle_release_connections: 0,
            body_rate_min: None,
        };
        crate::http::request::parse(&raw, &limits, &mut h)
            .unwrap()
            .unwrap();
        request_rules(&raw, &h)
    };
    assert_eq!(
        req(""),
        RequestRules {
            lookup: true,
            store: true
        }
    );
    assert_eq!(
        req("Cache-Control: no-cache\r\n"),
        RequestRules {
            lookup: false,
            store: true
        }
    );
    assert_eq!(
        req("Cache-Control: max-age=0\r\n"),
        RequestRules {
            lookup: false,
            store: true
        }
    );
    assert_eq!(
        req("Pragma: no-cache\r\n"),
        RequestRules {
            lookup: false,
            store: true
        }
    );
    assert_eq!(
        req("Cache-Control: no-store\r\n"),
        RequestRules {
            lookup: false,
            store: false
        }
    );
}
