#!/usr/bin/env bash
# Load benchmark (not a test): wrk against coregate in front of a local nginx origin on
# loopback. Prints wrk's requests/s and latency percentiles.
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
[[upstream]]
name = "origin"
[[upstream.server]]
address = "127.0.0.1:19081"
[[route]]
upstream = "origin"
CFG
cargo build --release --quiet
./target/release/coregate --config "$work/coregate.toml" &
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19080/ && break; sleep 0.1; done

echo "== coregate -> nginx origin, ${conns} connections, ${dur}s =="
wrk -t1 -c"$conns" -d"${dur}s" --latency http://127.0.0.1:19080/
