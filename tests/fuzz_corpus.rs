//! Stable replay of the fuzz corpora: every input under fuzz/corpus/<target>/ and
//! fuzz/regressions/<target>/ is run through the same check the libFuzzer target runs
//! (fuzz/src/lib.rs, included here), so `cargo test` on the stable toolchain keeps every crash
//! the fuzzers ever found fixed, without building libFuzzer.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut total = 0;
    for (target, check) in checks::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} fails its check",
                file.display()
            );
            total += 1;
        }
    }
    total
}

#[test]
fn every_seed_and_corpus_input_passes_its_check() {
    let n = replay("corpus");
    assert!(n >= 5 * 10, "only {n} corpus inputs found");
}

#[test]
fn every_fuzzer_finding_stays_fixed() {
    replay("regressions");
}
