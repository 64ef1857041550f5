#!/usr/bin/env python3
"""RSS per idle keep-alive client connection (issue: performance; target ≤ 16 KiB).

Starts the release binary with one worker and a static-response route, opens N client
connections on loopback, sends one keep-alive request on each and reads its answer, then
leaves them all open and idle. Prints the proxy's RSS before and after and the difference per
connection. Bounded: N connections, a deadline on every step, everything closed at the end.

Usage: python3 scripts/idle_memory.py [--connections 10000] [--binary target/release/coregate]
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_request(sock):
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"connection closed early: {data!r}")
        data += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/coregate"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="coregate-idle-") as work:
        conf = os.path.join(work, "idle.toml")
        with open(conf, "w") as f:
            f.write(f"""
[server]
workers = 1
[log]
level = "error"
[limits]
connections_per_shard_max = {args.connections + 100}
[[listener]]
listen = "127.0.0.1:{port}"
[[route]]
respond = {{ status = 200, body = "ok" }}
""")
        proxy = subprocess.Popen([args.binary, "--config", conf], stderr=subprocess.PIPE)
        socks = []
        try:
            deadline = time.time() + 10
            while True:
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=1)
                    one_request(s)
                    s.close()
                    break
                except OSError:
                    if time.time() > deadline or proxy.poll() is not None:
                        raise RuntimeError("proxy did not start")
                    time.sleep(0.05)
            time.sleep(0.5)
            before = rss_kib(proxy.pid)
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.settimeout(5)
                one_request(s)
                socks.append(s)
            time.sleep(1.0)  # let the shard settle (buffers given back after the answer)
            after = rss_kib(proxy.pid)
            per = (after - before) * 1024 / args.connections
            print(f"connections {args.connections}: RSS {before} KiB -> {after} KiB, "
                  f"{per / 1024:.1f} KiB ({per:.0f} B) per idle keep-alive connection")
        finally:
            for s in socks:
                s.close()
            proxy.terminate()
            try:
                proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.kill()


if __name__ == "__main__":
    sys.exit(main())
