//! libFuzzer entry for the `jwt` check (the check itself lives in src/lib.rs, shared with the
//! stable corpus replay in the main crate's tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coregate_fuzz::jwt(data));
