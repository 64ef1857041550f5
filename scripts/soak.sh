#!/usr/bin/env bash
# Soak: wrk at high concurrency for a set time against coregate (release build) in front of two
# real nginx origins on loopback. Checks, and exits non-zero unless all hold:
#   - zero non-2xx answers and zero client-side socket errors (connect, read, write, timeout);
#   - flat memory: RSS sampled every 5 s; the last sample is within 10% (+ 2 MiB) of the
#     sample taken after the first 30 s of load (warm-up: pools and buffers filled);
#   - no leaked descriptors: the proxy's fd count after the run (once idle pooled upstream
#     connections have expired) is back to its count before the load.
#
#   scripts/soak.sh [duration_s=300] [connections=256]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-300}
conns=${2:-256}
for p in wrk nginx; do
  command -v "$p" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null; break; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
cg_pid=""
cleanup() {
  [ -n "$cg_pid" ] && kill "$cg_pid" 2>/dev/null || true
  for f in "$work"/nginx*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

body=$(head -c 512 /dev/zero | tr '\0' 'x')
origins=()
for n in 1 2; do
  port=$(free_port)
  origins+=("127.0.0.1:$port")
  cat > "$work/nginx$n.conf" <<NGX
worker_processes 1;
pid $work/nginx$n.pid;
error_log $work/nginx$n.err;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$port; location / { return 200 "$body"; } }
}
NGX
  nginx -c "$work/nginx$n.conf"
done

listen_port=$(free_port)
cat > "$work/coregate.toml" <<CFG
[log]
level = "warn"
[timeouts]
upstream_idle_ms = 2000
[[listener]]
listen = "127.0.0.1:$listen_port"
[[upstream]]
name = "origin"
[[upstream.server]]
address = "${origins[0]}"
[[upstream.server]]
address = "${origins[1]}"
[[route]]
upstream = "origin"
CFG
cargo build --release --quiet
./target/release/coregate --config "$work/coregate.toml" 2>"$work/coregate.log" &
cg_pid=$!
url="http://127.0.0.1:$listen_port/soak"
for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
curl -sf -o /dev/null "$url"

fds() { ls "/proc/$cg_pid/fd" | wc -l; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$cg_pid/status"; }
# Baseline once the probe's pooled upstream connection has expired.
sleep 4
fd_before=$(fds)
rss_before=$(rss)

echo "== soak: coregate (pid $cg_pid) -> 2 nginx origins, $conns connections, ${dur}s"
wrk -t2 -c"$conns" -d"${dur}s" --timeout 10s --latency "$url" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
samples=()
elapsed=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 5
  elapsed=$((elapsed + 5))
  kill -0 "$cg_pid" 2>/dev/null || { echo "coregate died"; cat "$work/coregate.log"; exit 1; }
  samples+=("$elapsed:$(rss)")
done
wait "$wrk_pid" || true
cat "$work/wrk.out"

# Descriptors: wait for idle pooled connections to expire (upstream_idle_ms = 2 s).
fd_after=$(fds)
for _ in $(seq 50); do
  [ "$fd_after" -le "$fd_before" ] && break
  sleep 0.2
  fd_after=$(fds)
done

echo "== RSS samples (s:KiB): ${samples[*]}"
warm=""
for s in "${samples[@]}"; do
  t=${s%%:*}; v=${s##*:}
  [ -z "$warm" ] && [ "$t" -ge 30 ] && warm=$v
done
last=${samples[-1]##*:}
[ -z "$warm" ] && warm=${samples[0]##*:}
max=0; for s in "${samples[@]}"; do v=${s##*:}; [ "$v" -gt "$max" ] && max=$v; done
requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$work/wrk.out")
errors=$(grep -o 'Socket errors:.*' "$work/wrk.out" || true)

echo "== summary"
echo "requests:        ${requests:-?} (${rps:-?} req/s)"
echo "non-2xx:         ${non2xx:-0}"
echo "socket errors:   ${errors:-none}"
echo "RSS KiB:         before load $rss_before, after warm-up $warm, max $max, last $last"
echo "fds:             before $fd_before, after $fd_after"

fail=0
[ -n "$non2xx" ] && { echo "FAIL: non-2xx answers"; fail=1; }
[ -n "$errors" ] && { echo "FAIL: client-side socket errors"; fail=1; }
[ "$last" -gt $((warm + warm / 10 + 2048)) ] && { echo "FAIL: memory grew after warm-up"; fail=1; }
[ "$fd_after" -gt "$fd_before" ] && { echo "FAIL: descriptors leaked"; fail=1; }
grep -qi "panicked" "$work/coregate.log" && { echo "FAIL: coregate logged a panic"; fail=1; }
[ $fail -eq 0 ] && echo "PASS"
exit $fail
