#!/usr/bin/env bash
# Run every fuzz target (fuzz/, cargo-fuzz layout, libFuzzer) for a given time each, one after
# the other, and print a summary: seconds, executions, corpus size and crashes per target.
#
#   scripts/fuzz.sh [seconds_per_target=60] [target...]
#   FUZZ_MERGE=1 scripts/fuzz.sh 600     # also merge new coverage into fuzz/corpus/<target>/
#
# Only the stable toolchain is needed: cargo-fuzz passes nightly-only flags (-Zsanitizer=address,
# sanitizer coverage), which stable rustc accepts with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is
# installed from crates.io when missing. New inputs go to a scratch corpus (the checked-in seeds
# stay read-only unless FUZZ_MERGE=1); crashes land in fuzz/artifacts/<target>/. Each crash is
# to be turned into a regression input under fuzz/regressions/<target>/ (replayed by
# tests/fuzz_corpus.rs in `cargo test`) and a unit test where the fix is.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(request_head response_head chunked router config jwt)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O)

scratch=${FUZZ_SCRATCH:-$(mktemp -d)}
summary=()
status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  log="$scratch/$t.log"
  echo "== fuzzing $t for ${secs}s (log: $log)"
  set +e
  (cd fuzz && cargo fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048) >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  corpus=$(find "$scratch/$t" "fuzz/corpus/$t" -type f | wc -l)
  [ $rc -ne 0 ] && status=1 && tail -40 "$log"
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    (cd fuzz && cargo fuzz run -O "$t" "corpus/$t" "$scratch/$t" -- -merge=1) >>"$log" 2>&1 || true
  fi
  summary+=("$(printf '%-14s %6ss %12s execs %7s inputs %3s crash files  exit %s' \
    "$t" "$secs" "${runs:-?}" "$corpus" "$crashes" "$rc")")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
