#!/usr/bin/env bash
# Side-by-side comparison of coregate, nginx and HAProxy (issue: performance). Installs what it
# needs (nginx, haproxy, wrk from Debian; python3 is on the machine), builds coregate in release
# mode and prints a markdown table. Options: see scripts/compare.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in nginx haproxy wrk; do command -v "$p" >/dev/null || need+=("$p"); done
command -v pgrep >/dev/null || need+=(procps)
command -v taskset >/dev/null || need+=(util-linux)
# --breakdown samples with perf (Debian's package is linux-perf).
case " $* " in *" --breakdown "*) command -v perf >/dev/null || need+=(linux-perf) ;; esac
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 scripts/compare.py "$@"
