#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (insensitive to machine noise, unlike
# CPU time). Starts a 100 B nginx origin, runs the release binary under callgrind, warms up,
# then sends 2,000 requests and, in a second run, N requests; the difference in instructions
# over the difference in requests leaves start-up, warm-up and shutdown out.
# The shard runs the legacy (epoll) driver by default: under valgrind an io_uring shard does not
# wake for the shutdown message (CG_DRIVER=io_uring to try). Counts are for comparing builds.
# Usage: scripts/instructions.sh [ka|close] [requests]   (needs valgrind, nginx, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ka}
reqs_long=${2:-10000}
work=$(mktemp -d /tmp/coregate-instr-XXXX)
small=$(printf 'x%.0s' $(seq 100))
cat >"$work/origin.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19301 reuseport; location / { return 200 "$small"; } } }
CONF
cat >"$work/coregate.toml" <<CONF
[server]
workers = 1
driver = "${CG_DRIVER:-legacy}"
[log]
level = "error"
[[listener]]
listen = "127.0.0.1:19380"
[[upstream]]
name = "small"
[[upstream.server]]
address = "127.0.0.1:19301"
[[route]]
upstream = "small"
CONF
extra=()
[ "$mode" = close ] && extra=(-H "Connection: close")
nginx -c "$work/origin.conf" & origin=$!
trap 'kill $origin 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/count.lua" <<'LUA'
-- Stop each wrk thread after LIMIT responses, so that a run sends a known number of requests.
local n = 0
local limit = tonumber(os.getenv("LIMIT"))
function response() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
# One callgrind run: start, warm up, send $1 requests, stop (SIGTERM: graceful, dumps).
# Prints "requests instructions".
run() {
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" ${CALLGRIND_OPTS:-} \
    target/release/coregate --config "$work/coregate.toml" 2>"$work/vg.log" & local proxy=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:19380/ && break; sleep 0.2; done
  wrk -t1 -c8 -d1s "${extra[@]}" http://127.0.0.1:19380/ >/dev/null
  local reqs
  reqs=$(LIMIT=$1 wrk -t1 -c8 -d120s -s "$work/count.lua" "${extra[@]}" http://127.0.0.1:19380/ |
    awk '/requests in/ {print $1}')
  kill -TERM $proxy; wait $proxy || true
  echo "$reqs $(awk '/^totals:/ {print $2; exit}' "$work/cg.$1")"
}
read -r r1 i1 < <(run 2000)
read -r r2 i2 < <(run "$reqs_long")
echo "short run: $r1 requests, $i1 instructions; long run: $r2 requests, $i2 instructions"
echo "instructions per request: $(( (i2 - i1) / (r2 - r1) ))"
if [ -n "${KEEP:-}" ]; then cp "$work/cg.$reqs_long" "$KEEP"; echo "callgrind output: $KEEP"; fi
