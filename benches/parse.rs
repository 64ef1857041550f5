//! Hot-path pure code, without I/O: request head parsing and validation, response head parsing,
//! chunked decoding, route lookup. Compares nothing external; tracks our own ns/op over time.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

use coregate::config;
use coregate::http::{chunked, request, response};
use coregate::router::RouteRequest;

const REQUEST: &[u8] = b"GET /api/v1/users/42?fields=name HTTP/1.1\r\nHost: api.example.com\r\n\
User-Agent: wrk/4.2\r\nAccept: application/json\r\nAccept-Encoding: gzip, br\r\n\
Authorization: Bearer abc.def.ghi\r\nX-Request-Id: 5f1c1e0c-8a2b-4c41-9d0e-1b2a3c4d5e6f\r\n\
Connection: keep-alive\r\n\r\n";

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 28 Nov 2026 02:00:00 GMT\r\n\
Content-Type: application/json\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n";

fn benches(c: &mut Criterion) {
    let cfg = config::from_toml(
        "[[upstream]]\nname = \"a\"\n[[upstream.server]]\naddress = \"127.0.0.1:1\"\n\
[[route]]\nhost = \"api.example.com\"\npath_prefix = \"/api/v1\"\nupstream = \"a\"\n\
[[route]]\npath_prefix = \"/\"\nupstream = \"a\"\n",
        Path::new("bench.toml"),
    )
    .unwrap();
    let mut headers = Vec::new();
    c.bench_function("request_parse", |b| {
        b.iter(|| request::parse(black_box(REQUEST), &cfg.limits, &mut headers).unwrap())
    });
    c.bench_function("response_parse", |b| {
        b.iter(|| response::parse(black_box(RESPONSE), false, 65536, &mut headers).unwrap())
    });
    c.bench_function("route_lookup", |b| {
        let path = b"/api/v1/users/42";
        b.iter(|| {
            cfg.router.route(&RouteRequest {
                host: black_box(b"api.example.com"),
                path: black_box(path),
                method: request::Method::Get,
                buf: path,
                headers: &[],
            })
        })
    });
    let mut body = Vec::new();
    for _ in 0..16 {
        chunked::write_chunk(&mut body, &[b'x'; 1024]);
    }
    body.extend_from_slice(chunked::LAST_CHUNK);
    let mut g = c.benchmark_group("chunked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_16k", |b| {
        b.iter(|| {
            let mut d = chunked::Decoder::new();
            let mut pos = 0;
            while !d.is_done() {
                pos += d.decode(&body[pos..]).unwrap().consumed;
            }
            pos
        })
    });
    g.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);
