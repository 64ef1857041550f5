//! Upstream responses with bad or tricky framing: coregate must never pass a desync on to the
//! client. Each case is answered cleanly (its status and body), refused with 502, or — when the
//! response had already started — cut by closing the client connection; and the next request,
//! on the same client connection when it stayed open, gets its own answer, never bytes the
//! upstream left behind. Cases are rows of a table: a feature adds its rows here.

mod support;

use support::*;

/// A response an upstream "left behind" after the one it was asked for.
const EVIL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!";

#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// This status and body; the client connection stays open.
    Answer(u16, &'static str),
    /// Refused before any byte reached the client: 502; the client connection stays open.
    BadGateway,
    /// A complete response was impossible: 502, or the connection closed mid-response.
    Fails,
    /// The response started, then the connection closed.
    Cut,
}

struct Case {
    name: &'static str,
    method: &'static str,
    /// The origin's bytes, then whether it closes after them.
    reply: &'static [u8],
    then_close: bool,
    /// Followed by `EVIL` on the same upstream connection.
    leaves_evil: bool,
    outcome: Outcome,
}

const fn case(
    name: &'static str,
    method: &'static str,
    reply: &'static [u8],
    then_close: bool,
    leaves_evil: bool,
    outcome: Outcome,
) -> Case {
    Case {
        name,
        method,
        reply,
        then_close,
        leaves_evil,
        outcome,
    }
}

use Outcome::*;

const CASES: &[Case] = &[
    // Leftover bytes after a complete response: answered, the upstream connection is not reused.
    case("CL and TE: TE wins", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, true, Answer(200, "")),
    case("bytes past Content-Length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true, Answer(200, "ok")),
    case("body on a HEAD answer", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, true, Answer(200, "")),
    case("body on a 204", "GET", b"HTTP/1.1 204 No Content\r\n\r\nhello", false, true, Answer(204, "")),
    case("body on a 304", "GET", b"HTTP/1.1 304 Not Modified\r\n\r\n", false, true, Answer(304, "")),
    case("Connection: close, bytes after", "GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, true, Answer(200, "ok")),
    case("HTTP/1.0 answer, bytes after", "GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true, Answer(200, "ok")),
    // Tricky but well-defined.
    case("interim answers before the final one", "GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, false, Answer(200, "hi")),
    case("bare LF line ends", "GET", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, false, Answer(200, "ok")),
    case("close-delimited body is re-chunked", "GET", b"HTTP/1.1 200 OK\r\n\r\nall of it", true, false, Answer(200, "all of it")),
    case("chunk extensions and trailers", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n", false, false, Answer(200, "ok")),
    // Malformed heads: 502 before anything reaches the client.
    case("differing Content-Lengths", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", false, true, BadGateway),
    case("Content-Length list that differs", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nabc", false, true, BadGateway),
    case("signed Content-Length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false, true, BadGateway),
    case("empty Content-Length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", false, true, BadGateway),
    case("overflowing Content-Length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\nok", false, true, BadGateway),
    case("TE identity", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok", false, true, BadGateway),
    case("TE gzip, chunked", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false, true, BadGateway),
    case("TE repeated", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, true, BadGateway),
    case("space before the colon", "GET", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", false, true, BadGateway),
    case("NUL in a value", "GET", b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("bare CR line end", "GET", b"HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("obs-fold", "GET", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("HTTP/1.2", "GET", b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("HTTP/2 status line", "GET", b"HTTP/2 200\r\ncontent-length: 2\r\n\r\nok", false, true, BadGateway),
    case("two-digit status", "GET", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("status 999", "GET", b"HTTP/1.1 999 OK\r\nContent-Length: 2\r\n\r\nok", false, true, BadGateway),
    case("101 without an upgrade", "GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false, true, BadGateway),
    case("garbage status line", "GET", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", false, true, BadGateway),
    // Bodies that end wrong.
    case("body shorter than Content-Length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, false, Cut),
    case("chunked body cut short", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true, false, Cut),
    case("invalid chunk size", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", true, false, Fails),
];

#[test]
fn bad_upstream_framing_never_desyncs_the_client() {
    let origin = Origin::start(|r| {
        if r.target == "/ok" {
            return Reply::Bytes(response(200, &[], b"ok"));
        }
        let i: usize = r.target.trim_start_matches("/case/").parse().unwrap();
        let c = &CASES[i];
        let mut bytes = c.reply.to_vec();
        if c.leaves_evil {
            bytes.extend_from_slice(EVIL);
        }
        if c.then_close {
            Reply::BytesThenClose(bytes)
        } else {
            Reply::Bytes(bytes)
        }
    });
    let proxy = Proxy::start(&simple_config(&[origin.addr], "[server]\nworkers = 1\n"));
    for (i, c) in CASES.iter().enumerate() {
        let mut client = Client::connect(proxy.addr());
        // Warm the pool so that a wrongly pooled connection would be picked next.
        assert_eq!(client.get("/ok").text(), "ok", "{}: warm-up", c.name);
        client.send(format!("{} /case/{i} HTTP/1.1\r\nHost: h\r\n\r\n", c.method).as_bytes());
        let got = client.read_response(c.method == "HEAD");
        let kept = match (c.outcome, &got) {
            (Answer(status, body), Some(r)) => {
                assert_eq!((r.status, r.text().as_str()), (status, body), "{}", c.name);
                true
            }
            (BadGateway | Fails, Some(r)) => {
                assert_eq!(r.status, 502, "{}", c.name);
                true
            }
            (Fails | Cut, None) => {
                // The response could not be completed: the proxy closed the connection.
                let mut byte = [0u8; 1];
                let eof = std::io::Read::read(&mut client.stream, &mut byte);
                assert!(matches!(eof, Ok(0) | Err(_)), "{}: not closed", c.name);
                false
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", c.name),
        };
        // The next request gets its own answer, on the same connection when it stayed open.
        if !kept {
            client = Client::connect(proxy.addr());
        }
        for round in 0..3 {
            let r = client.get("/ok");
            assert_eq!(r.text(), "ok", "{}: request {round} after the case", c.name);
        }
    }
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}
