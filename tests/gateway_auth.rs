//! JWT and API-key authentication end to end. Tokens are signed by PyJWT and keys made by
//! openssl (tests/support/jwt.rs); coregate verifies with jsonwebtoken.

mod support;

use support::jwt::{self, Key, Keys, Spec};
use support::*;

const SECRET: &str = "s3cret-for-tests-only-0123456789";
const ISS: &str = "https://issuer.test";

fn config(origin: &Origin, keys: &Keys, jwks: &std::path::Path) -> String {
    let pub_key = |n: &str| keys.public(n).display().to_string();
    let mut s = format!(
        r#"[[listener]]
listen = "127.0.0.1:0"

[[upstream]]
name = "app"
[[upstream.server]]
address = "{}"

[[auth]]
name = "hs"
kind = "jwt"
algorithms = ["HS256", "HS384", "HS512"]
secret = "{SECRET}"
issuer = "{ISS}"
audience = "api"
leeway_s = 0
claims_to_headers = {{ sub = "x-user-id", tenant = "x-tenant" }}

[[auth]]
name = "rs"
kind = "jwt"
algorithms = ["RS256"]
public_key_file = "{}"

[[auth]]
name = "es"
kind = "jwt"
algorithms = ["ES256"]
public_key_file = "{}"

[[auth]]
name = "ed"
kind = "jwt"
algorithms = ["EdDSA"]
public_key_file = "{}"

[[auth]]
name = "jwks"
kind = "jwt"
algorithms = ["RS256"]
jwks_file = "{}"

[[auth]]
name = "admin"
kind = "jwt"
algorithms = ["HS256"]
secret = "{SECRET}"
required_claims = ["sub"]
claims = {{ role = "admin" }}

[[auth]]
name = "keys"
kind = "api_key"
header = "x-api-key"
keys = {{ "k-123" = "acme", "k-456" = "globex" }}

[[auth]]
name = "qkeys"
kind = "api_key"
query = "api_key"
keys = {{ "q-1" = "beta" }}
"#,
        origin.addr,
        pub_key("rsa"),
        pub_key("ec"),
        pub_key("ed"),
        jwks.display()
    );
    for name in ["hs", "rs", "es", "ed", "jwks", "admin", "keys", "qkeys"] {
        s.push_str(&format!(
            "\n[[route]]\npath_prefix = \"/{name}\"\nupstream = \"app\"\nauth = \"{name}\"\n\
             request_headers = {{ set = {{ \"x-consumer\" = \"${{consumer}}\" }} }}\n"
        ));
    }
    s
}

struct Setup {
    origin: Origin,
    keys: Keys,
    proxy: Proxy,
}

fn setup() -> Setup {
    let origin = Origin::fixed("app", "ok");
    let keys = Keys::generate("auth");
    let jwks = keys.jwks(
        "jwks.json",
        &[("rsa", "k1", "RS256"), ("rsa2", "k2", "RS256")],
    );
    let proxy = Proxy::start(&config(&origin, &keys, &jwks));
    Setup {
        origin,
        keys,
        proxy,
    }
}

fn get(c: &mut Client, path: &str, token: Option<&str>) -> Response {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    c.request(&format!("GET {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n"))
}

const GOOD: &str = r#"{"sub":"alice","iss":"https://issuer.test","aud":"api","tenant":"t1"}"#;

#[test]
fn every_accepted_algorithm_verifies() {
    let s = setup();
    let (rsa, ec, ed) = (
        s.keys.private("rsa"),
        s.keys.private("ec"),
        s.keys.private("ed"),
    );
    let tokens = jwt::sign(&[
        Spec::new("HS256", Key::Secret(SECRET), GOOD),
        Spec::new("HS384", Key::Secret(SECRET), GOOD),
        Spec::new("HS512", Key::Secret(SECRET), GOOD),
        Spec::new("RS256", Key::File(&rsa), r#"{"sub":"r"}"#),
        Spec::new("ES256", Key::File(&ec), r#"{"sub":"e"}"#),
        Spec::new("EdDSA", Key::File(&ed), r#"{"sub":"d"}"#),
    ]);
    let mut c = Client::connect(s.proxy.addr());
    let paths = ["/hs", "/hs", "/hs", "/rs", "/es", "/ed"];
    for (path, token) in paths.iter().zip(&tokens) {
        let r = get(&mut c, path, Some(token));
        assert_eq!(r.status, 200, "{path} {token}");
    }
    let got = s.origin.wait_requests(6);
    assert_eq!(got[0].header("x-user-id"), Some("alice"));
    assert_eq!(got[0].header("x-tenant"), Some("t1"));
    assert_eq!(got[0].header("x-consumer"), Some("alice"));
    assert_eq!(got[4].header("x-consumer"), Some("e"));
    assert!(
        got[0].header("authorization").is_some(),
        "the token itself is forwarded"
    );
}

#[test]
fn bad_tokens_get_401_with_a_challenge() {
    let s = setup();
    let rsa = s.keys.private("rsa");
    let rsa_pub = std::fs::read_to_string(s.keys.public("rsa")).unwrap();
    let iss_wrong = r#"{"sub":"a","iss":"https://evil.test","aud":"api"}"#;
    let aud_wrong = r#"{"sub":"a","iss":"https://issuer.test","aud":"other"}"#;
    let no_iss = r#"{"sub":"a","aud":"api"}"#;
    let tokens = jwt::sign(&[
        Spec::new("HS256", Key::Secret(SECRET), GOOD),
        Spec {
            exp_in: Some(-5),
            ..Spec::new("HS256", Key::Secret(SECRET), GOOD)
        },
        Spec {
            nbf_in: Some(3600),
            ..Spec::new("HS256", Key::Secret(SECRET), GOOD)
        },
        Spec::new("HS256", Key::Secret(SECRET), iss_wrong),
        Spec::new("HS256", Key::Secret(SECRET), aud_wrong),
        Spec::new("HS256", Key::Secret(SECRET), no_iss),
        Spec::new(
            "HS256",
            Key::Secret("another-secret-0123456789abcdef"),
            GOOD,
        ),
        Spec::new("RS256", Key::File(&rsa), GOOD),
        Spec {
            exp_in: None,
            ..Spec::new("HS256", Key::Secret(SECRET), GOOD)
        },
    ]);
    let mut c = Client::connect(s.proxy.addr());
    let r = get(&mut c, "/hs", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"coregate\"")
    );
    let invalid = "Bearer realm=\"coregate\", error=\"invalid_token\"";
    let cases: Vec<(&str, String, &str)> = vec![
        ("/hs", jwt::tamper(&tokens[0]), "tampered signature"),
        ("/hs", jwt::unsigned(GOOD), "alg none"),
        ("/hs", tokens[1].clone(), "expired"),
        ("/hs", tokens[2].clone(), "not yet valid"),
        ("/hs", tokens[3].clone(), "wrong issuer"),
        ("/hs", tokens[4].clone(), "wrong audience"),
        ("/hs", tokens[5].clone(), "missing issuer"),
        ("/hs", tokens[6].clone(), "wrong secret"),
        (
            "/rs",
            jwt::forge_hs256(&rsa_pub, r#"{"sub":"a"}"#),
            "HS256 signed with the RSA public key",
        ),
        ("/hs", tokens[7].clone(), "RS256 where only HS* is accepted"),
        ("/hs", tokens[8].clone(), "no exp"),
        ("/hs", "not.a.jwt".to_string(), "garbage"),
    ];
    for (path, token, why) in &cases {
        let r = get(&mut c, path, Some(token));
        assert_eq!(r.status, 401, "{why}");
        assert_eq!(r.header("www-authenticate"), Some(invalid), "{why}");
    }
    // The untampered token passes on the same connection.
    assert_eq!(get(&mut c, "/hs", Some(&tokens[0])).status, 200);
    assert_eq!(
        s.origin.request_count(),
        1,
        "no refused request reached the origin"
    );
}

#[test]
fn claim_rules_give_403_and_forged_claim_headers_are_replaced() {
    let s = setup();
    let tokens = jwt::sign(&[
        Spec::new(
            "HS256",
            Key::Secret(SECRET),
            r#"{"sub":"bob","role":"user"}"#,
        ),
        Spec::new(
            "HS256",
            Key::Secret(SECRET),
            r#"{"sub":"root","role":"admin"}"#,
        ),
        Spec::new("HS256", Key::Secret(SECRET), r#"{"role":"admin"}"#),
        Spec::new("HS256", Key::Secret(SECRET), GOOD),
    ]);
    let mut c = Client::connect(s.proxy.addr());
    let r = get(&mut c, "/admin", Some(&tokens[0]));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"coregate\", error=\"insufficient_scope\"")
    );
    assert_eq!(get(&mut c, "/admin", Some(&tokens[1])).status, 200);
    assert_eq!(
        get(&mut c, "/admin", Some(&tokens[2])).status,
        401,
        "required sub missing"
    );
    let r = c.request(&format!(
        "GET /hs HTTP/1.1\r\nHost: h\r\nX-User-Id: forged\r\nx-tenant: forged\r\nAuthorization: bearer {}\r\n\r\n",
        tokens[3]
    ));
    assert_eq!(r.status, 200);
    let got = s.origin.wait_requests(2);
    assert_eq!(got[1].header_count("x-user-id"), 1);
    assert_eq!(got[1].header("x-user-id"), Some("alice"));
    assert_eq!(got[1].header("x-tenant"), Some("t1"));
}

#[test]
fn jwks_keys_are_picked_by_kid() {
    let s = setup();
    let (k1, k2) = (s.keys.private("rsa"), s.keys.private("rsa2"));
    let spec = |key, header| Spec {
        header,
        ..Spec::new("RS256", Key::File(key), r#"{"sub":"j"}"#)
    };
    let tokens = jwt::sign(&[
        spec(&k1, r#"{"kid":"k1"}"#),
        spec(&k2, r#"{"kid":"k2"}"#),
        spec(&k2, r#"{"kid":"k1"}"#),
        spec(&k1, r#"{"kid":"k3"}"#),
        spec(&k2, "{}"),
    ]);
    let mut c = Client::connect(s.proxy.addr());
    let want = [200, 200, 401, 401, 200];
    for (i, (t, w)) in tokens.iter().zip(want).enumerate() {
        assert_eq!(get(&mut c, "/jwks", Some(t)).status, w, "token {i}");
    }
}

#[test]
fn api_keys_from_header_and_query() {
    let s = setup();
    let mut c = Client::connect(s.proxy.addr());
    let r = c.request("GET /keys HTTP/1.1\r\nHost: h\r\nX-Api-Key: k-123\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = c.request("GET /keys HTTP/1.1\r\nHost: h\r\nX-Api-Key: k-999\r\n\r\n");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey realm=\"coregate\"")
    );
    assert_eq!(c.get("/keys").status, 401);
    assert_eq!(c.get("/qkeys?x=1&api_key=q-1").status, 200);
    assert_eq!(c.get("/qkeys?api_key=k-123").status, 401);
    let got = s.origin.wait_requests(2);
    assert_eq!(got[0].header("x-consumer"), Some("acme"));
    assert_eq!(got[1].header("x-consumer"), Some("beta"));
}

#[test]
fn refused_request_bodies_are_drained_or_the_connection_closes() {
    let s = setup();
    let mut c = Client::connect(s.proxy.addr());
    // Fully buffered body: dropped, and the connection goes on.
    let r = c.request("POST /hs HTTP/1.1\r\nHost: h\r\nContent-Length: 31\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h");
    assert_eq!(r.status, 401);
    assert_eq!(get(&mut c, "/keys", None).status, 401);
    // A body still on its way: coregate answers and closes rather than read it as a request.
    let mut c = Client::connect(s.proxy.addr());
    c.send(b"POST /hs HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\npartial");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.header("connection")), (401, Some("close")));
    assert!(c.is_closed());
    assert_eq!(s.origin.request_count(), 0);
}
