#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (insensitive to machine noise, unlike
# CPU time). Starts a 100 B nginx origin, runs the release binary under callgrind, warms up,
# zeroes the counters, sends N requests and dumps: start-up, warm-up and shutdown stay out.
# The shard runs the legacy (epoll) driver by default: under valgrind an io_uring shard does not
# wake for the shutdown message (CG_DRIVER=io_uring to try). Counts are for comparing builds.
# Usage: [COREGATE_BIN=path] [BODY=bytes] scripts/instructions.sh [ka|close] [requests]
# (needs valgrind, nginx, wrk; the binary defaults to target/release/coregate; BODY is the
# origin's body size, 100 by default; above 4 KiB it is a static file, as in compare.py)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ka}
reqs_long=${2:-3000}
body=${BODY:-100}
case $body in
  '' | *[!0-9]*) echo "BODY must be a size in bytes, got '$body'" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/coregate-instr-XXXX)
if [ "$body" -le 4096 ]; then
  location="return 200 \"$(head -c "$body" /dev/zero | tr '\0' x)\";"
else
  mkdir "$work/www" && head -c "$body" /dev/zero | tr '\0' x >"$work/www/body.txt"
  location="root $work/www; try_files /body.txt =404; etag off;"
fi
cat >"$work/origin.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19301 reuseport; location / { $location } } }
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
-- Stop each wrk thread after LIMIT responses, so that a run sends a known number of requests
-- (wrk itself still waits out its -d duration, so durations are kept short).
local n = 0
local limit = tonumber(os.getenv("LIMIT"))
function response() n = n + 1; if n >= limit then wrk.thread:stop() end end
LUA
# One callgrind run: start, warm up (500 requests), zero the counters, send N requests, dump
# the counters, stop. Only the measured requests are counted, so a count repeats within ~2%.
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" ${CALLGRIND_OPTS:-} \
  "${COREGATE_BIN:-target/release/coregate}" --config "$work/coregate.toml" 2>"$work/vg.log" & proxy=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:19380/ && break; sleep 0.2; done
LIMIT=500 wrk -t1 -c8 -d15s -s "$work/count.lua" "${extra[@]}" http://127.0.0.1:19380/ >/dev/null
sleep 0.3
callgrind_control -z $proxy >/dev/null
reqs=$(LIMIT=$reqs_long wrk -t1 -c8 -d$((10 + reqs_long / 100))s -s "$work/count.lua" "${extra[@]}" http://127.0.0.1:19380/ |
  awk '/requests in/ {print $1}')
sleep 0.3
callgrind_control -d $proxy >/dev/null
sleep 0.5
kill -TERM $proxy; wait $proxy || true
dump=$(ls -t "$work"/cg.out.* | head -1)
instr=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
echo "$reqs requests, $instr instructions"
echo "instructions per request: $((instr / reqs))"
if [ -n "${KEEP:-}" ]; then cp "$dump" "$KEEP"; echo "callgrind output: $KEEP"; fi
