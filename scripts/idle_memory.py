#!/usr/bin/env python3
"""RSS per idle keep-alive client connection (issue: performance; target ≤ 16 KiB).

Starts the release binary with one worker and a static-response route, opens N client
connections on loopback, sends one keep-alive request on each and reads its answer, then
leaves them all open and idle. Prints the proxy's RSS before and after and the difference per
connection. The connections open in --batches batches, each left idle --settle seconds before
the next (connections arrive over time, and coregate releases an idle one's task and buffers
after a second); the growth of the last batch alone is printed too. Bounded: N connections, a deadline on every step, everything closed at the end.

--tls makes the listener HTTPS (config/certs/, the example certificates) and the clients TLS.
--proxy nginx|haproxy measures one of those instead, configured alike (one worker, a static
answer, the same certificates), for comparison.

Usage: python3 scripts/idle_memory.py [--connections 10000] [--tls] [--proxy coregate]
       [--binary target/release/coregate] [--batches 10] [--settle 2.5]
"""

import argparse
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"
CERTS = os.path.join(ROOT, "config/certs")


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


def proxy_command(kind, work, port, connections, tls):
    """The command line that starts `kind` listening on `port`, its config written in `work`."""
    cert, key = os.path.join(CERTS, "localhost.pem"), os.path.join(CERTS, "localhost.key")
    if kind == "nginx":
        ssl_lines = f"ssl_certificate {cert}; ssl_certificate_key {key};" if tls else ""
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1;
pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections {connections + 100}; }}
http {{ access_log off; keepalive_timeout 300s; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}{" ssl" if tls else ""}; {ssl_lines}
    location / {{ return 200 "ok"; }} }} }}
""")
        return ["nginx", "-c", conf]
    if kind == "haproxy":
        bind = f"bind 127.0.0.1:{port}"
        if tls:
            pem = os.path.join(work, "haproxy.pem")
            with open(pem, "w") as f:
                f.write(open(cert).read() + open(key).read())
            bind += f" ssl crt {pem}"
        conf = os.path.join(work, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
  maxconn {connections + 100}
  nbthread 1
defaults
  mode http
  timeout client 300s
  timeout server 30s
  timeout connect 5s
  timeout http-keep-alive 300s
frontend fe
  {bind}
  http-request return status 200 content-type text/plain string ok
""")
        return ["haproxy", "-db", "-f", conf]
    tls_lines = f'[listener.tls]\ncert = "{cert}"\nkey = "{key}"\n' if tls else ""
    conf = os.path.join(work, "idle.toml")
    with open(conf, "w") as f:
        f.write(f"""
[server]
workers = 1
[log]
level = "error"
[limits]
connections_per_shard_max = {connections + 100}
[[listener]]
listen = "127.0.0.1:{port}"
{tls_lines}[[route]]
respond = {{ status = 200, body = "ok" }}
""")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/coregate"))
    ap.add_argument("--tls", action="store_true", help="HTTPS listener, TLS clients")
    ap.add_argument("--proxy", choices=["coregate", "nginx", "haproxy"], default="coregate")
    ap.add_argument("--batches", type=int, default=10,
                    help="open the connections in this many batches (1 = all at once)")
    ap.add_argument("--settle", type=float, default=2.5,
                    help="seconds each batch is left idle (past coregate's 1 s release)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # HAProxy asks for twice its maxconn in descriptors, and fails to start without them.
    need = 2 * args.connections + 512
    if soft < need:
        if hard < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root may raise it
            except (ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    port = free_port()
    context = None
    if args.tls:
        context = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(5)
        if context is not None:
            s = context.wrap_socket(s, server_hostname="localhost")
        return s

    with tempfile.TemporaryDirectory(prefix="coregate-idle-") as work:
        command = proxy_command(args.proxy, work, port, args.connections, args.tls)
        if command is None:
            command = [args.binary, "--config", os.path.join(work, "idle.toml")]
        proxy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        socks = []
        try:
            deadline = time.time() + 10
            while True:
                try:
                    s = connect()
                    one_request(s)
                    s.close()
                    break
                except OSError:
                    if time.time() > deadline or proxy.poll() is not None:
                        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                        raise RuntimeError(f"{args.proxy} did not start (file limit {limit}; "
                                           "HAProxy wants two per connection: try "
                                           f"--connections {limit // 2 - 300})")
                    time.sleep(0.05)
            time.sleep(0.5)
            # In batches, each left idle for --settle seconds before the next: coregate gives
            # an idle connection's task and buffers back after a second (above
            # `idle_release_connections`), and the allocator keeps what is freed for reuse
            # rather than returning it, so the figure counts the memory of one batch's busy
            # second. The last batch's growth alone is what each further idle connection costs.
            before = rss_kib(proxy.pid)
            sizes = [args.connections // args.batches] * args.batches
            sizes[-1] += args.connections - sum(sizes)
            last_before = before
            for size in sizes:
                last_before = rss_kib(proxy.pid)
                for _ in range(size):
                    s = connect()
                    one_request(s)
                    socks.append(s)
                time.sleep(args.settle)
            after = rss_kib(proxy.pid)
            per = (after - before) * 1024 / args.connections
            last = (after - last_before) * 1024 / sizes[-1]
            kind = "TLS keep-alive" if args.tls else "keep-alive"
            print(f"{args.proxy}, connections {args.connections} in {args.batches} batches: "
                  f"RSS {before} KiB -> {after} KiB, {per / 1024:.1f} KiB ({per:.0f} B) per idle "
                  f"{kind} connection; the last {sizes[-1]} alone: {last / 1024:.1f} KiB "
                  f"({last:.0f} B) each")
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
