//! Smuggling and conformance suite, checked at the origin: for every case the origin must receive
//! exactly the requests the client meant (method, target, body), no more and no fewer, each one
//! well-formed and readable one way only. tests/strict_parsing.rs covers the 400s at the edge;
//! this file covers what is forwarded: TE.TE obfuscations, chunk-size and extension abuse, bare
//! LF/CR, absolute-form targets and Host, pipelining after bodies, CL.0 after local answers, and
//! 100-continue. Cases are rows of a table: a feature adds its rows here.
//!
//! Sources: RFC 9112/9110, PortSwigger's request smuggling research (TE.TE gadgets, CL.0),
//! HTTP Garden's proxy findings, and shared/research/reliability.md.

mod support;

use support::*;

/// One request as the origin must see it: (method, target, decoded body).
type Want = (&'static str, &'static str, &'static [u8]);

struct Case {
    name: &'static str,
    /// Written by the client in one write.
    send: &'static [u8],
    /// Statuses the client reads, in order.
    statuses: &'static [u16],
    /// Requests the origin receives because of this case, in order.
    origin: &'static [Want],
    /// The proxy closes the connection after the last status.
    closes: bool,
}

const fn case(
    name: &'static str,
    send: &'static [u8],
    statuses: &'static [u16],
    origin: &'static [Want],
    closes: bool,
) -> Case {
    Case {
        name,
        send,
        statuses,
        origin,
        closes,
    }
}

const REFUSED: &[u16] = &[400];
const NONE: &[Want] = &[];

/// Transfer-Encoding obfuscations (PortSwigger TE.TE gadgets, smuggler's mutations). The ones a
/// strict reading accepts must reach the origin as exactly one chunked message; the rest are
/// refused. (Space or tab before the colon, `xchunked`, a vertical tab, repeated and
/// `chunked, identity` are in strict_parsing.rs.)
const TE_OBFUSCATIONS: &[Case] = &[
    case("TE value with trailing space", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("TE value after a tab", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("TE mixed case", b"POST /te HTTP/1.1\r\nHost: h\r\ntransfer-ENCODING: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("TE with an empty list item", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("TE after a bare-LF field line", b"POST /te HTTP/1.1\r\nHost: h\r\nX: X\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("request after the last chunk is a second request", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("POST", "/te", b""), ("GET", "/second", b"")], false),
    case("TE then a second TE", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE name, LF, colon", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\n: chunked\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE as an obs-fold line", b"POST /te HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE value folded", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE with NUL", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\0\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE with form feed", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0cchunked\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE quoted", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE with a parameter", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE identity", b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", REFUSED, NONE, true),
    case("TE with CL 0", b"POST /te HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("TE named in Connection", b"POST /te HTTP/1.1\r\nHost: h\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &[200], &[("POST", "/te", b"abc")], false),
    case("CL named in Connection", b"POST /cl HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\nabc", &[200], &[("POST", "/cl", b"abc")], false),
];

/// Chunk sizes and extensions (Burp's ChunkSizeScan/ChunkExtensionScan, HTTP Garden's
/// chunk-size findings, CVE-2025-55315's LF in an extension).
const CHUNKS: &[Case] = &[
    case("extensions are dropped", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=\"q;\\\"x\"\r\nhello\r\n0;z\r\n\r\n", &[200], &[("POST", "/c", b"hello")], false),
    case("leading zeros in the size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n", &[200], &[("POST", "/c", b"hello")], false),
    case("upper-case hex size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", &[200], &[("POST", "/c", b"0123456789")], false),
    case("trailers are dropped", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Trailer: 1\r\nContent-Length: 9\r\n\r\n", &[200], &[("POST", "/c", b"a")], false),
    case("bare CR in an extension", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("bare LF in an extension", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("bare LF after the size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("NUL in an extension", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\0\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("space before the size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("negative size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("plus-signed size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("underscore in size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0_5\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("Z size (longest valid prefix)", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5Z\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("data longer than its size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("data shorter than its size", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhi\r\n0\r\n\r\n", REFUSED, NONE, true),
    case("request line as a trailer", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", REFUSED, NONE, true),
    case("bare LF in the trailers", b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\nY: b\r\n\r\n", REFUSED, NONE, true),
];

/// Line endings, bare CR and LF, obs-fold (RFC 9112 §2.2, §5.2).
const LINES: &[Case] = &[
    case(
        "bare LF line ends",
        b"GET /lf HTTP/1.1\nHost: h\nX-A: 1\n\n",
        &[200],
        &[("GET", "/lf", b"")],
        false,
    ),
    case(
        "mixed CRLF and LF",
        b"GET /lf HTTP/1.1\r\nHost: h\n\r\n",
        &[200],
        &[("GET", "/lf", b"")],
        false,
    ),
    case(
        "bare CR line ends",
        b"GET /cr HTTP/1.1\rHost: h\r\r",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "bare CR in the target",
        b"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "LF inside the request line",
        b"GET /a\nb HTTP/1.1\r\nHost: h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "CR before CRLF in a value",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "NUL in the target",
        b"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "obs-fold with a tab",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "obs-fold in Host",
        b"GET / HTTP/1.1\r\nHost:\r\n h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "space at the end of the request line",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case("HTTP/0.9 request", b"GET /\r\n\r\n", REFUSED, NONE, true),
    case(
        "lower-case version",
        b"GET / http/1.1\r\nHost: h\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
];

/// Request-target forms and Host (RFC 9112 §3.2): an absolute-form target wins over Host, is
/// sent upstream in origin-form, and routes by its own authority.
const TARGETS: &[Case] = &[
    case(
        "absolute-form overrides Host",
        b"GET http://a.example/p?q HTTP/1.1\r\nHost: b.example\r\n\r\n",
        &[200],
        &[("GET", "/p?q", b"")],
        false,
    ),
    case(
        "absolute-form, upper-case scheme",
        b"GET HTTP://A.example:8443/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
        &[200],
        &[("GET", "/x", b"")],
        false,
    ),
    case(
        "absolute-form on HTTP/1.0 without Host",
        b"GET http://a.example/p HTTP/1.0\r\n\r\n",
        &[200],
        &[("GET", "/p", b"")],
        true,
    ),
    case(
        "absolute-form without Host on HTTP/1.1",
        b"GET http://a.example/p HTTP/1.1\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "absolute-form with userinfo",
        b"GET http://u:p@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "absolute-form, other scheme",
        b"GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        REFUSED,
        NONE,
        true,
    ),
    case(
        "Host routes when origin-form",
        b"GET /p HTTP/1.1\r\nHost: b.example\r\n\r\n",
        &[418],
        NONE,
        false,
    ),
    case(
        "empty Host",
        b"GET /empty-host HTTP/1.1\r\nHost: \r\n\r\n",
        &[200],
        &[("GET", "/empty-host", b"")],
        false,
    ),
    case(
        "lower-case method is a different method",
        b"get /m HTTP/1.1\r\nHost: h\r\n\r\n",
        &[200],
        &[("get", "/m", b"")],
        false,
    ),
];

/// Pipelining after bodies and after answers coregate gives itself (CL.0: a body left unread
/// becomes the next request). Pipelined responses come back in order.
const PIPELINES: &[Case] = &[
    case("CL, then GET, then chunked", b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: h\r\n\r\nPOST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", &[200, 200, 200], &[("POST", "/1", b"hello"), ("GET", "/2", b""), ("POST", "/3", b"hi")], false),
    case("GET with a body (0.CL)", b"GET /0cl HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nGET /GET /next HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("GET", "/0cl", b"GET /"), ("GET", "/next", b"")], false),
    case("nothing after Connection: close", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("GET", "/a", b""), ("GET", "/b", b"")], true),
    case("nothing after HTTP/1.0", b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", &[200], &[("GET", "/a", b"")], true),
    case("CL.0 after a static answer", b"POST /static HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("GET", "/after", b"")], false),
    case("CL.0 after a 502", b"POST /dead HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[502, 200], &[("GET", "/after", b"")], false),
    case("chunked CL.0 after a static answer", b"POST /static HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("GET", "/after", b"")], false),
    case("CL.0 after a 401 (auth)", b"POST /auth HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[401, 200], &[("GET", "/after", b"")], false),
    case("CL.0 after a 405 (methods)", b"POST /get-only HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[405, 200], &[("GET", "/after", b"")], false),
    case("unread body after a 401 closes", b"POST /auth HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", &[401], NONE, true),
    case("unread body after a static answer closes", b"POST /static HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", &[200], NONE, true),
    case("CL with leading zeros and a list", b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 003, 3\r\n\r\nabcGET /n HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("POST", "/cl", b"abc"), ("GET", "/n", b"")], false),
    case("Upgrade answered without 101 is no tunnel (CVE-2026-2833 shape)", b"GET /up HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", &[200, 200], &[("GET", "/up", b""), ("GET", "/after", b"")], false),
    case("CL with a space inside", b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n0123456789", REFUSED, NONE, true),
    case("CL in hex", b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc", REFUSED, NONE, true),
    case("empty CL then a real one", b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: \r\nContent-Length: 3\r\n\r\nabc", REFUSED, NONE, true),
];

fn conformance_config(origin: std::net::SocketAddr) -> String {
    simple_config(
        &[origin],
        &format!(
            "[[upstream]]\nname = \"dead\"\n[[upstream.server]]\naddress = \"{}\"\n\n\
[[route]]\nname = \"static\"\npath_prefix = \"/static\"\n\
respond = {{ status = 200, body = \"static\" }}\n\n\
[[route]]\nname = \"dead\"\npath_prefix = \"/dead\"\nupstream = \"dead\"\n\n\
[[route]]\nname = \"by-host\"\nhost = \"b.example\"\nrespond = {{ status = 418, body = \"routed by Host\" }}\n\n\
[[auth]]\nname = \"jwt\"\nkind = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"conformance\"\n\n\
[[route]]\nname = \"auth\"\npath_prefix = \"/auth\"\nupstream = \"app\"\nauth = \"jwt\"\n\n\
[[route]]\nname = \"get-only\"\npath_prefix = \"/get-only\"\nmethods = [\"GET\"]\nupstream = \"app\"\n",
            closed_port()
        ),
    )
}

/// Run `cases` against one proxy and one recording origin.
fn run(cases: &[Case]) {
    let origin = Origin::echo();
    let proxy = Proxy::start(&conformance_config(origin.addr));
    for (i, c) in cases.iter().enumerate() {
        let before = origin.request_count();
        let mut client = Client::connect(proxy.addr());
        client.send(c.send);
        for (n, want) in c.statuses.iter().enumerate() {
            let r = client.read_response(false);
            let got = r.as_ref().map(|r| r.status);
            assert_eq!(got, Some(*want), "{}: response {n}", c.name);
        }
        if c.closes {
            assert!(client.is_closed(), "{}: connection left open", c.name);
        }
        drop(client);
        // A request on another connection, which the origin sees after everything this case
        // caused: then the case's requests can be compared exactly.
        let sentinel = format!("/sentinel/{i}");
        assert_eq!(Client::connect(proxy.addr()).get(&sentinel).status, 200);
        let all = origin.wait_requests(before + c.origin.len() + 1);
        let got: Vec<&Received> = all[before..]
            .iter()
            .filter(|r| r.target != sentinel)
            .collect();
        let got_view: Vec<(&str, &str, &[u8])> = got
            .iter()
            .map(|r| (r.method.as_str(), r.target.as_str(), r.body.as_slice()))
            .collect();
        assert_eq!(got_view, c.origin, "{}: origin received", c.name);
        for r in got {
            assert_well_formed(c.name, r);
        }
    }
}

/// What every forwarded request looks like, whatever the client sent: CRLF line ends, one Host,
/// at most one framing field (CL, or `Transfer-Encoding: chunked` with plain chunks), and no
/// hop-by-hop fields.
fn assert_well_formed(name: &str, r: &Received) {
    let head = &r.raw_head;
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    assert!(!bare_lf, "{name}: bare LF forwarded");
    assert_eq!(r.header_count("host"), 1, "{name}: Host count");
    let framing = r.header_count("content-length") + r.header_count("transfer-encoding");
    assert!(framing <= 1, "{name}: {framing} framing fields");
    if let Some(te) = r.header("transfer-encoding") {
        assert_eq!(te, "chunked", "{name}: TE forwarded as {te:?}");
        let text = String::from_utf8_lossy(&r.raw_body);
        assert!(
            !text.contains(';'),
            "{name}: chunk extension forwarded: {text:?}"
        );
    }
    // An upgrade request carries `Connection: upgrade` and `Upgrade` on purpose (WebSocket);
    // anything else hop-by-hop never reaches the origin.
    let upgrade = r.header("upgrade").is_some()
        && r.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("upgrade"));
    for hop in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "expect",
        "proxy-connection",
    ] {
        if upgrade && (hop == "connection" || hop == "upgrade") {
            continue;
        }
        assert_eq!(r.header_count(hop), 0, "{name}: {hop} forwarded");
    }
}

#[test]
fn te_obfuscations_reach_the_origin_as_one_reading() {
    run(TE_OBFUSCATIONS);
}

#[test]
fn chunk_sizes_and_extensions_are_read_strictly() {
    run(CHUNKS);
}

#[test]
fn line_endings_and_folding() {
    run(LINES);
}

#[test]
fn target_forms_and_host() {
    run(TARGETS);
}

#[test]
fn pipelines_and_cl0_never_smuggle() {
    run(PIPELINES);
}

#[test]
fn expect_100_continue_with_a_body() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&conformance_config(origin.addr));
    let mut c = Client::connect(proxy.addr());
    c.send(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.read_response_raw(false).expect("100 Continue");
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let got = origin.wait_requests(1);
    assert_eq!(got[0].body, b"hello");
    assert_well_formed("100-continue", &got[0]);
    // The same connection goes on.
    assert_eq!(c.get("/next").status, 200);
}

#[test]
fn expect_100_continue_without_a_body_gets_no_interim() {
    let origin = Origin::echo();
    let proxy = Proxy::start(&conformance_config(origin.addr));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response_raw(false).unwrap();
    assert_eq!(r.status, 200, "no 100 for a request without a body");
    // The body sent at once, without waiting for 100: read once, forwarded once.
    c.send(b"POST /e2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
    let got = origin.wait_requests(2);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[1].target.as_str(), got[1].body.as_slice()),
        ("/e2", &b"abc"[..])
    );
    // Over the body limit: 413 at once, no 100, nothing forwarded.
    let proxy = Proxy::start(&simple_config(
        &[origin.addr],
        "[limits]\nbody_bytes_max = 10\n",
    ));
    let mut c = Client::connect(proxy.addr());
    c.send(b"PUT /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    assert_eq!(c.read_response_raw(false).unwrap().status, 413);
    assert_eq!(origin.request_count(), 2);
}
