//! JWT header handling: the input is an `Authorization` field value, checked by a route's JWT
//! policy (HS256, secret from the config). Only a token whose signed part is the one signed with
//! that secret may pass; anything else (bad base64 or JSON, `alg: none`, another algorithm, a
//! `kid` no key has, a mutated header, payload or signature, another scheme) is refused, and
//! nothing panics.

use std::path::Path;
use std::sync::OnceLock;

use coregate::config::Config;
use coregate::gateway::auth::Credentials;
use coregate::http::{HeaderKind, HeaderSpan, Span};

const TOML: &str = "[[auth]]\nname = \"jwt\"\nkind = \"jwt\"\nalgorithms = [\"HS256\"]\n\
secret = \"fuzz-secret\"\n\n[[route]]\nauth = \"jwt\"\nrespond = { status = 200 }\n";

/// `{"alg":"HS256","typ":"JWT"}.{"sub":"fuzz","exp":4102444800}`, signed with "fuzz-secret".
pub const VALID_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
eyJzdWIiOiJmdXp6IiwiZXhwIjo0MTAyNDQ0ODAwfQ.ag0HVHZdQSuT0ISHDeeS-MNb5vu3UTAzxdWbVdx7I4U";

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        coregate::config::from_toml(TOML, Path::new("fuzz-jwt.toml")).expect("jwt fuzz config")
    })
}

pub fn jwt(data: &[u8]) {
    let auth = &config().gateway.auths[0];
    const NAME: &[u8] = b"authorization";
    let mut buf = NAME.to_vec();
    buf.extend_from_slice(data);
    let headers = [HeaderSpan {
        name: Span {
            start: 0,
            end: NAME.len() as u32,
        },
        value: Span {
            start: NAME.len() as u32,
            end: buf.len() as u32,
        },
        kind: HeaderKind::Other,
    }];
    let creds = Credentials {
        buf: &buf,
        headers: &headers,
        target: Span::default(),
    };
    if let Ok(identity) = auth.check(&creds) {
        // The token as the check reads it: after the scheme's space, trimmed.
        let space = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
        let token = &data[space..];
        let signed = |t: &[u8]| t.rsplitn(2, |&b| b == b'.').nth(1).map(<[u8]>::to_vec);
        assert_eq!(
            signed(token.trim_ascii()),
            signed(VALID_TOKEN.as_bytes()),
            "a token not signed with the secret passed: {:?}",
            String::from_utf8_lossy(data)
        );
        assert_eq!(
            identity.claims.get("sub").and_then(|v| v.as_str()),
            Some("fuzz")
        );
    }
}
