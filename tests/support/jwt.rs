//! JWT material for tests, made by tools no one here wrote: key pairs by `openssl`, tokens and
//! JWKs by PyJWT (python3-jwt, installed by scripts/setup.sh). Keys go to a fresh temp folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder of generated key pairs: `rsa`, `ec` (P-256) and `ed` (Ed25519), each as
/// `NAME.key` (private, PKCS#8 PEM) and `NAME.pub` (public, SPKI PEM).
pub struct Keys {
    pub dir: PathBuf,
}

impl Keys {
    pub fn generate(tag: &str) -> Keys {
        let dir = std::env::temp_dir().join(format!(
            "coregate-jwt-{}-{tag}-{}",
            std::process::id(),
            super::NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let gen = |name: &str, args: &[&str]| {
            let key = dir.join(format!("{name}.key"));
            let out = Command::new("openssl")
                .arg("genpkey")
                .args(args)
                .arg("-out")
                .arg(&key)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(dir.join(format!("{name}.pub")))
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        gen(
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        gen(
            "rsa2",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        gen(
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        gen("ed", &["-algorithm", "ED25519"]);
        Keys { dir }
    }

    pub fn private(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    pub fn public(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pub"))
    }

    /// Write a JWK set of the public keys `(name, kid, alg)` and return its path.
    pub fn jwks(&self, file: &str, keys: &[(&str, &str, &str)]) -> PathBuf {
        let spec: Vec<String> = keys
            .iter()
            .map(|(n, kid, alg)| {
                format!(
                    "[{:?}, {:?}, {:?}]",
                    self.public(n).display().to_string(),
                    kid,
                    alg
                )
            })
            .collect();
        let script = format!(
            r#"
import json, jwt
from jwt.algorithms import get_default_algorithms
algs = get_default_algorithms()
keys = []
for path, kid, alg in [{}]:
    pem = open(path, 'rb').read()
    a = algs[alg]
    k = json.loads(a.to_jwk(a.prepare_key(pem)))
    k['kid'] = kid
    k['alg'] = alg
    keys.append(k)
print(json.dumps({{'keys': keys}}))
"#,
            spec.join(", ")
        );
        let path = self.dir.join(file);
        std::fs::write(&path, python(&script)).unwrap();
        path
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One token to sign: `key` is a secret (HS*) or a private key file; `claims` and `header` are
/// JSON objects; `exp_in`/`nbf_in`: seconds from now (added to the claims when set).
pub struct Spec<'a> {
    pub alg: &'a str,
    pub key: Key<'a>,
    pub claims: &'a str,
    pub header: &'a str,
    pub exp_in: Option<i64>,
    pub nbf_in: Option<i64>,
}

pub enum Key<'a> {
    Secret(&'a str),
    File(&'a Path),
}

impl<'a> Spec<'a> {
    /// A token valid for an hour with `claims`.
    pub fn new(alg: &'a str, key: Key<'a>, claims: &'a str) -> Spec<'a> {
        Spec {
            alg,
            key,
            claims,
            header: "{}",
            exp_in: Some(3600),
            nbf_in: None,
        }
    }
}

/// Sign every spec with PyJWT, in one python run.
pub fn sign(specs: &[Spec<'_>]) -> Vec<String> {
    let mut items = Vec::new();
    for s in specs {
        let key = match &s.key {
            Key::Secret(k) => format!("{k:?}.encode()"),
            Key::File(p) => format!("open({:?}, 'rb').read()", p.display().to_string()),
        };
        let opt = |v: Option<i64>| v.map_or("None".to_string(), |v| v.to_string());
        items.push(format!(
            "({:?}, {key}, json.loads({:?}), json.loads({:?}), {}, {})",
            s.alg,
            s.claims,
            s.header,
            opt(s.exp_in),
            opt(s.nbf_in)
        ));
    }
    let script = format!(
        r#"
import json, time, jwt
now = int(time.time())
for alg, key, claims, header, exp_in, nbf_in in [{}]:
    if exp_in is not None: claims['exp'] = now + exp_in
    if nbf_in is not None: claims['nbf'] = now + nbf_in
    print(jwt.encode(claims, key, algorithm=alg, headers=header or None))
"#,
        items.join(",\n")
    );
    python(&script).lines().map(str::to_string).collect()
}

fn python(script: &str) -> String {
    // Debian's interpreter: python3-jwt is a Debian package, and a python3 earlier on PATH
    // (pyenv, a venv) would not see it.
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 (scripts/setup.sh installs python3-jwt)");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Replace the signature's last characters: a token whose signature no longer verifies.
pub fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(sig).unwrap())
}

/// An unsigned token (`alg: none`) with `claims`, built by hand as an attacker would.
pub fn unsigned(claims: &str) -> String {
    let b64 = |s: &str| {
        python(&format!(
            "import base64; print(base64.urlsafe_b64encode({s:?}.encode()).decode().rstrip('='))"
        ))
        .trim()
        .to_string()
    };
    format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(claims))
}

/// An HS256 token made with Python's own hmac (PyJWT refuses a PEM key as an HMAC secret):
/// the algorithm-confusion attack, signing with a server's *public* key.
pub fn forge_hs256(secret: &str, claims: &str) -> String {
    python(&format!(
        r#"
import base64, hashlib, hmac, json, time
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip('=')
claims = json.loads({claims:?}); claims['exp'] = int(time.time()) + 3600
msg = b64(b'{{"alg":"HS256","typ":"JWT"}}') + '.' + b64(json.dumps(claims).encode())
sig = hmac.new({secret:?}.encode(), msg.encode(), hashlib.sha256).digest()
print(msg + '.' + b64(sig))
"#
    ))
    .trim()
    .to_string()
}
