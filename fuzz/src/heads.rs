//! Head parsing checks. A request or response coregate accepts must be re-serialised into a head
//! that parses again, to the same meaning: same method, target, authority and body framing for
//! requests; same status and framing for responses. Parsing must not depend on how the bytes
//! were split into reads.

use coregate::config::defaults::HEADER_COUNT_LIMIT;
use coregate::config::Limits;
use coregate::http::request::{self, RequestError, RequestHead};
use coregate::http::response;
use coregate::http::write::{self, FieldEdits, ForwardInfo, OutFraming};
use coregate::http::{BodyKind, Version};

/// Small limits, so that inputs reach the limit paths.
fn limits() -> Limits {
    Limits {
        header_bytes_max: 4096,
        header_count_max: 32,
        uri_bytes_max: 1024,
        body_bytes_max: 1 << 20,
        connections_per_shard_max: 1,
        connections_per_ip_max: 0,
        idle_release_connections: 0,
        body_rate_min: None,
    }
}

/// Limits for re-parsing what coregate wrote (it adds a few fields of its own).
fn roomy() -> Limits {
    Limits {
        header_bytes_max: 1 << 20,
        header_count_max: HEADER_COUNT_LIMIT,
        uri_bytes_max: 1 << 20,
        body_bytes_max: u64::MAX,
        connections_per_shard_max: 1,
        connections_per_ip_max: 0,
        idle_release_connections: 0,
        body_rate_min: None,
    }
}

const DEFAULT_HOST: &[u8] = b"upstream.test:8080";

pub fn request_head(data: &[u8]) {
    let lim = limits();
    let mut headers = Vec::new();
    let result = request::parse(data, &lim, &mut headers);
    check_prefix(data, &lim, &result);
    let Ok(Some(head)) = result else { return };
    assert!(head.head_len <= data.len() && head.head_len <= lim.header_bytes_max);
    assert!(head.target.len() <= lim.uri_bytes_max);
    // The head alone parses to the same thing: bytes after it never change its meaning.
    let mut h2 = Vec::new();
    let alone = request::parse(&data[..head.head_len], &lim, &mut h2);
    assert_eq!(
        alone,
        Ok(Some(head.clone())),
        "head parsed differently alone"
    );
    forward_round_trip(data, &head, &headers);
}

/// A prefix of the input (a head that arrived in two reads) is either still incomplete or
/// refused; and when a prefix is refused, so is the whole input: whether a request is served
/// must not depend on how it was split into reads.
fn check_prefix(data: &[u8], lim: &Limits, whole: &Result<Option<RequestHead>, RequestError>) {
    let end = match whole {
        Ok(Some(h)) => h.head_len,
        _ => data.len(),
    };
    if end < 2 {
        return;
    }
    let cut = usize::from(u16::from_le_bytes([data[0], data[1]])) % end;
    let mut h = Vec::new();
    match request::parse(&data[..cut], lim, &mut h) {
        Ok(None) => {}
        Ok(Some(h)) => panic!("prefix of {cut} bytes parsed as a complete head {h:?}"),
        Err(e) => assert!(
            whole.is_err(),
            "prefix of {cut} bytes refused ({e:?}) but the whole input gives {whole:?}"
        ),
    }
}

fn forward_round_trip(data: &[u8], head: &RequestHead, headers: &[coregate::http::HeaderSpan]) {
    let framing = match head.body {
        BodyKind::None => OutFraming::None,
        BodyKind::Length(n) => OutFraming::Length(n),
        BodyKind::Chunked => OutFraming::Chunked,
        BodyKind::UntilClose => panic!("a request body is never close-delimited"),
    };
    let info = ForwardInfo {
        client_ip: b"192.0.2.1",
        proto: b"http",
        default_host: DEFAULT_HOST,
        target: None,
        edits: FieldEdits::default(),
    };
    let mut out = Vec::new();
    write::request_head(&mut out, data, head, headers, &info, framing);
    let mut h = Vec::new();
    let again = match request::parse(&out, &roomy(), &mut h) {
        Ok(Some(a)) => a,
        other => panic!(
            "forwarded head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(
        again.head_len,
        out.len(),
        "forwarded head has trailing bytes"
    );
    assert_eq!(again.method, head.method);
    assert_eq!(again.method_span.get(&out), head.method_span.get(data));
    assert_eq!(again.target.get(&out), head.target.get(data));
    assert_eq!(again.version, Version::Http11);
    assert_eq!(again.body, head.body, "framing changed on the way upstream");
    let host = head.authority.map_or(DEFAULT_HOST, |a| a.get(data));
    assert_eq!(again.authority.map(|a| a.get(&out)), Some(host));
    assert!(again.keep_alive && !again.expect_continue);
}

pub fn response_head(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let max = 4096;
    let mut headers = Vec::new();
    let Ok(Some(resp)) = response::parse(input, head_request, max, &mut headers) else {
        return;
    };
    assert!(resp.head_len <= input.len() && resp.head_len <= max);
    assert!((100..=599).contains(&resp.status));
    let bodiless = head_request || resp.status < 200 || resp.status == 204 || resp.status == 304;
    if bodiless {
        assert_eq!(resp.body, BodyKind::None, "bodiless answer with a body");
    }
    if resp.status < 200 {
        return; // interim answers are skipped, never forwarded
    }
    // Framing towards an HTTP/1.1 client, as proxy.rs chooses it.
    let framing = match resp.body {
        BodyKind::None => match resp.declared_length {
            Some(n) if resp.status != 204 => OutFraming::Length(n),
            _ => OutFraming::None,
        },
        BodyKind::Length(n) => OutFraming::Length(n),
        BodyKind::Chunked | BodyKind::UntilClose => OutFraming::Chunked,
    };
    let mut out = Vec::new();
    write::response_head(
        &mut out,
        input,
        &resp,
        &headers,
        framing,
        false,
        Version::Http11,
        &[],
        &FieldEdits::default(),
    );
    let mut h = Vec::new();
    let again = match response::parse(&out, head_request, 1 << 20, &mut h) {
        Ok(Some(a)) => a,
        other => panic!(
            "response head written to the client does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.status, resp.status);
    assert_eq!(again.reason.get(&out), resp.reason.get(input));
    let want = match resp.body {
        BodyKind::UntilClose => BodyKind::Chunked,
        b => b,
    };
    assert_eq!(again.body, want, "framing changed on the way to the client");
    assert!(again.reusable, "a kept-alive answer reads as not reusable");
}
