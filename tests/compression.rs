//! Compression over real sockets: gzip and brotli bodies (Content-Length and chunked from the
//! origin) decode to the exact original, with `Vary: Accept-Encoding`, chunked framing (close
//! for HTTP/1.0) and a weakened ETag; small, non-compressible and already-compressed bodies
//! pass untouched; q-values are honoured; curl decodes it; and with the cache, each coding is
//! its own stored variant.

mod support;

use support::*;

/// An origin answering `body` as `content_type`; `/chunked` answers chunked.
fn origin(body: Vec<u8>, content_type: &'static str) -> Origin {
    Origin::start(move |r| {
        let fields = [("Content-Type", content_type), ("ETag", "\"v1\"")];
        if r.target == "/chunked" {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for piece in body.chunks(10_000) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            return Reply::Bytes(out);
        }
        Reply::Bytes(response(200, &fields, &body))
    })
}

fn get(c: &mut Client, path: &str, accept: &str) -> Response {
    c.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept-Encoding: {accept}\r\n\r\n"
    ))
}

#[test]
fn gzip_and_brotli_decode_to_the_exact_original() {
    let body = text_body(200_000);
    let o = origin(body.clone(), "text/html; charset=utf-8");
    let proxy = Proxy::start(&cached_config(o.addr, "compress = true", ""));
    let mut c = Client::connect(proxy.addr());
    for path in ["/length", "/chunked"] {
        let gz = get(&mut c, path, "gzip");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
        assert_eq!((gz.framing, gz.header("content-length")), ("chunked", None));
        assert!(gz.body.len() < body.len() / 3, "{} bytes", gz.body.len());
        assert_eq!(
            gunzip(&gz.body),
            body,
            "{path}: gzip decodes to the original"
        );
        let br = get(&mut c, path, "gzip, deflate, br");
        assert_eq!(br.header("content-encoding"), Some("br"));
        assert_eq!(
            unbrotli(&br.body),
            body,
            "{path}: brotli decodes to the original"
        );
    }
    assert_eq!(
        get(&mut c, "/length", "gzip").header("etag"),
        Some("W/\"v1\"")
    );
    // q-values: gzip preferred over br; br refused; nothing acceptable.
    let r = get(&mut c, "/length", "br;q=0.5, gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(&mut c, "/length", "br;q=0, identity");
    assert_eq!(
        (r.header("content-encoding"), r.body.len()),
        (None, body.len())
    );
    assert_eq!(
        r.header("vary"),
        Some("Accept-Encoding"),
        "compressible for others"
    );
    assert_eq!(
        r.header("etag"),
        Some("\"v1\""),
        "identity keeps the strong ETag"
    );
    let plain = c.get("/length");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, body);
}

#[test]
fn http10_client_gets_a_close_delimited_compressed_body() {
    let body = text_body(50_000);
    let o = origin(body.clone(), "application/json");
    let proxy = Proxy::start(&cached_config(o.addr, "compress = true", ""));
    let mut c = Client::connect(proxy.addr());
    let r = c.request("GET /x HTTP/1.0\r\nHost: test\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(
        (r.framing, r.header("content-encoding")),
        ("close", Some("gzip"))
    );
    assert_eq!(gunzip(&r.body), body);
}

#[test]
fn small_uncompressible_and_already_compressed_bodies_pass_untouched() {
    let small =
        Origin::start(|_| Reply::Bytes(response(200, &[("Content-Type", "text/plain")], b"tiny")));
    let png = Origin::start(|_| {
        Reply::Bytes(response(
            200,
            &[("Content-Type", "image/png")],
            &vec![7u8; 5000],
        ))
    });
    let zipped = text_body(5000);
    let gz_body = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&zipped).unwrap();
        e.finish().unwrap()
    };
    let pre = {
        let gz = gz_body.clone();
        Origin::start(move |_| {
            let h = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")];
            Reply::Bytes(response(200, &h, &gz))
        })
    };
    let no_transform = Origin::start(|_| {
        let h = [
            ("Content-Type", "text/plain"),
            ("Cache-Control", "no-transform"),
        ];
        Reply::Bytes(response(200, &h, &text_body(5000)))
    });
    for (o, expect_len) in [
        (&small, 4),
        (&png, 5000),
        (&pre, gz_body.len()),
        (&no_transform, 5000),
    ] {
        let proxy = Proxy::start(&cached_config(o.addr, "compress = true", ""));
        let mut c = Client::connect(proxy.addr());
        let r = get(&mut c, "/", "gzip, br");
        let len = expect_len.to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()));
        assert_eq!(r.body.len(), expect_len);
        assert_ne!(r.header("content-encoding"), Some("br"));
    }
    let proxy = Proxy::start(&cached_config(pre.addr, "compress = true", ""));
    let r = get(&mut Client::connect(proxy.addr()), "/", "gzip");
    assert_eq!(
        (r.header("content-encoding"), r.body.clone()),
        (Some("gzip"), gz_body)
    );
    assert_eq!(
        gunzip(&r.body),
        zipped,
        "passed through, not compressed twice"
    );
}

#[test]
fn curl_decodes_the_compressed_answer() {
    let body = text_body(30_000);
    let o = origin(body.clone(), "text/css");
    let proxy = Proxy::start(&cached_config(o.addr, "compress = true", ""));
    let url = format!("http://{}/style.css", proxy.addr());
    let (code, out) = curl(&["--compressed", "-H", "Accept-Encoding: gzip", &url]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.as_bytes(), &body[..]);
}

#[test]
fn cached_and_compressed_each_coding_is_its_own_variant() {
    let body = text_body(20_000);
    let o = Origin::start({
        let body = body.clone();
        move |_| {
            let h = [
                ("Content-Type", "text/plain"),
                ("Cache-Control", "max-age=60"),
            ];
            Reply::Bytes(response(200, &h, &body))
        }
    });
    let proxy = Proxy::start(&cached_config(o.addr, "cache = {}\ncompress = true", ""));
    let mut c = Client::connect(proxy.addr());
    let miss = get(&mut c, "/v", "gzip");
    assert_eq!(
        (miss.header("x-cache"), miss.header("content-encoding")),
        (Some("MISS"), Some("gzip"))
    );
    let hit = get(&mut c, "/v", "gzip");
    assert_eq!(
        (hit.header("x-cache"), hit.header("content-encoding")),
        (Some("HIT"), Some("gzip"))
    );
    assert_eq!(hit.framing, "length", "a stored body has a known length");
    assert_eq!(hit.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&hit.body), body);
    // Another coding is another variant: a miss, then its own hit.
    assert_eq!(get(&mut c, "/v", "br").header("x-cache"), Some("MISS"));
    let br = get(&mut c, "/v", "br");
    assert_eq!(
        (br.header("x-cache"), unbrotli(&br.body)),
        (Some("HIT"), body.clone())
    );
    let plain = c.get("/v");
    assert_eq!(plain.header("x-cache"), Some("MISS"));
    let plain = c.get("/v");
    assert_eq!(plain.header("x-cache"), Some("HIT"));
    assert_eq!(plain.body, body);
    assert_eq!(o.count_to("/v"), 3);
}

/// Complete chunks of a chunked body in `raw` (after the head): their data, and whether the
/// last chunk has arrived.
fn chunks_so_far(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = raw[at..].windows(2).position(|w| w == b"\r\n") else {
            return (data, false);
        };
        let size_text = std::str::from_utf8(&raw[at..at + eol]).unwrap();
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
        if size == 0 {
            return (data, true);
        }
        let start = at + eol + 2;
        if raw.len() < start + size + 2 {
            return (data, false);
        }
        data.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
}

#[test]
fn compression_streams_what_has_arrived_before_the_origin_finishes() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let first = text_body(20_000);
    let second = b"and the rest, sent only once the client has decoded the first part".to_vec();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (p1, p2) = (first.clone(), second.clone());
    let origin = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let chunk = |data: &[u8]| {
            let mut out = format!("{:x}\r\n", data.len()).into_bytes();
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            out
        };
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        out.extend(chunk(&p1));
        s.write_all(&out).unwrap();
        go_rx
            .recv_timeout(DEADLINE)
            .expect("the client saw the first part");
        let mut rest = chunk(&p2);
        rest.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&rest).unwrap();
    });
    let proxy = Proxy::start(&cached_config(addr, "compress = true", ""));
    let mut c = std::net::TcpStream::connect(proxy.addr()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let mut tmp = [0u8; 65536];
    let mut signalled = false;
    loop {
        let n = c.read(&mut tmp).unwrap();
        assert!(n > 0, "proxy closed early");
        raw.extend_from_slice(&tmp[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let (data, done) = chunks_so_far(&raw[end + 4..]);
        let mut dec = flate2::write::GzDecoder::new(Vec::new());
        dec.write_all(&data).unwrap();
        dec.flush().unwrap();
        if !signalled && dec.get_ref().len() >= first.len() {
            assert_eq!(&dec.get_ref()[..first.len()], &first[..]);
            go_tx.send(()).unwrap();
            signalled = true;
        }
        if done {
            assert!(
                signalled,
                "the first part decoded before the origin finished"
            );
            let mut whole = first.clone();
            whole.extend_from_slice(&second);
            assert_eq!(gunzip(&data), whole);
            break;
        }
    }
    origin.join().unwrap();
}
