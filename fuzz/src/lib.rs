//! Fuzz checks for coregate's pure parts: request and response head parsing (with a
//! re-serialise and re-parse round trip), the chunked codec (split invariance and an
//! encode/decode round trip), the router (against a brute-force reference), config loading and
//! JWT header handling (no token but the one signed with the secret passes).
//!
//! Shared by the libFuzzer targets in fuzz_targets/ (one line each) and by the stable corpus
//! replay in the main crate (tests/fuzz_corpus.rs includes this file with `#[path]`), so every
//! corpus and regression input also runs in `cargo test`. A check panics on a violated property;
//! an input a check does not apply to simply returns.
//!
mod body;
mod conf;
mod heads;
mod jwt;
mod routes;

pub use body::chunked;
pub use conf::config;
pub use heads::{request_head, response_head};
pub use jwt::jwt;
pub use routes::router;

/// A check: panics when the input breaks a property.
pub type Check = fn(&[u8]);

/// Every check by target name, for the corpus replay.
pub const TARGETS: &[(&str, Check)] = &[
    ("request_head", request_head),
    ("response_head", response_head),
    ("chunked", chunked),
    ("router", router),
    ("config", config),
    ("jwt", jwt),
];
