#!/usr/bin/env bash
# Load benchmark (not a test): wrk against coregate in front of a local nginx origin on
# loopback, over plain HTTP and then over HTTPS (coregate terminating TLS with a throw-away
# certificate from scripts/gen-certs.sh; wrk keeps its connections, so this measures TLS
# record processing, not handshakes). Prints wrk's requests/s and latency percentiles, and
# coregate's CPU time per request in each scenario.
#   scripts/bench.sh [duration_s=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
conns=${2:-64}
for p in wrk nginx; do
  command -v "$p" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null; break; }
done
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:19081; location / { return 200 "$(head -c 100 /dev/zero | tr '\0' 'x')"; } }
}
NGX
nginx -c "$work/nginx.conf"

cat > "$work/coregate.toml" <<CFG
[log]
level = "warn"
[[listener]]
listen = "127.0.0.1:19080"
[[listener]]
name = "tls"
listen = "127.0.0.1:19443"
[listener.tls]
cert = "$work/certs/localhost.pem"
key = "$work/certs/localhost.key"
[[upstream]]
name = "origin"
[[upstream.server]]
address = "127.0.0.1:19081"
[[route]]
upstream = "origin"
CFG
./scripts/gen-certs.sh "$work/certs" localhost
cargo build --release --quiet
./target/release/coregate --config "$work/coregate.toml" &
cg=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19080/ && break; sleep 0.1; done

# CPU time (user + system, in clock ticks) coregate has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$cg/stat"; }
run() {
  local name=$1 url=$2
  echo "== $name: coregate -> nginx origin, ${conns} connections, ${dur}s =="
  local before; before=$(cpu_ticks)
  wrk -t1 -c"$conns" -d"${dur}s" --latency "$url" | tee "$work/wrk.out"
  local after; after=$(cpu_ticks)
  local reqs; reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  awk -v t=$((after - before)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (r > 0) printf "coregate CPU: %.1f us per request\n\n", t / hz / r * 1e6 }'
}
run "HTTP" http://127.0.0.1:19080/
# "localhost" so that wrk sends a host name as SNI (an IP there is not valid SNI).
run "HTTPS (TLS terminated by coregate)" https://localhost:19443/
