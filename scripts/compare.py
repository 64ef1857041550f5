#!/usr/bin/env python3
"""coregate vs nginx vs HAProxy, same machine, same run, interleaved.

Starts two nginx origins (100 B and 16 KiB `return 200`), puts each proxy in front of them
with comparable settings (upstream keep-alive, no access log, same worker count), drives each
with wrk on loopback and prints a markdown table: requests/s, p50/p99 latency, CPU µs per
request of the proxy's whole process tree (utime+stime from /proc over the run ÷ requests),
and upstream connections opened during the run (from the origins' stub_status).

Modes: pinned (each proxy 1 worker on CPU 0; wrk and origins on CPU 1) and shared (2 workers,
nothing pinned). Shared rounds also run coregate with 1 worker, and a scaling table compares
2 workers with 1 and says where this machine could show 1.7x at all (where the proxy, not wrk
and the origins, is what limits the rate). Figures are the median of --runs runs.

--breakdown (pinned mode; needs `perf`): samples the proxy's processes with `perf record -g`
during each measured run and splits the proxy's CPU µs/req into the kernel's TCP/IP work for its sends and
receives (tcp_sendmsg/tcp_recvmsg and everything under them, loopback delivery to the receiving
socket included: work every proxy must do), the rest of the kernel (syscall entry, io_uring or
epoll, scheduling) and user space, and counts the system calls the proxy made per request
(`perf stat -e raw_syscalls:sys_enter`) and the TCP segments sent on the machine per request
(/proc/net/snmp OutSegs: the load generator's, the proxy's and the origins' together).

--pace-ms N: each wrk connection waits N ms after every response before its next request, so
every proxy is offered about the same load (64 connections / (N ms + latency)) instead of all it
can take. Per-request CPU depends on load (a busier process handles more events per wake-up), and
unpaced, when the load generator is the bottleneck, the fastest proxy is the least busy one;
paced, all run at about the same rate.

Under each table, the per-run ratios: each coregate run ÷ the better peer of the same round.

Usage: scripts/compare.sh [--duration 10] [--runs 3] [--modes pinned,shared] [--breakdown]
                          [--scenarios ka100,ka16k,close100,tls100,gzip16k]
                          [--proxies coregate,nginx,haproxy]
                          [--pace-ms N]
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
ORIGIN_SMALL, ORIGIN_BIG, ORIGIN_STATUS = 19101, 19102, 19103
PROXY_PORT, PROXY_TLS_PORT = 19180, 19443
CERT = os.path.join(ROOT, "config/certs/localhost.pem")
KEY = os.path.join(ROOT, "config/certs/localhost.key")

SCENARIOS = {
    "ka100": ("100 B keep-alive", "http", "/small", []),
    "ka16k": ("16 KiB keep-alive", "http", "/big", []),
    "close100": ("100 B connection close", "http", "/small", ["-H", "Connection: close"]),
    "tls100": ("100 B TLS keep-alive", "https", "/small", []),
    # Compression makes the proxy, not the load side, the bottleneck: the scenario that can
    # show 2 workers scaling on a 2-core machine (the scaling table). HAProxy's gzip is libslz
    # (one fast fixed level), nginx's and coregate's zlib-style level 5: their CPU is not comparable.
    "gzip16k": ("16 KiB JSON gzipped by the proxy", "http", "/text", ["-H", "Accept-Encoding: gzip"]),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def wait_http(url, timeout=10.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            import ssl

            ctx = ssl._create_unverified_context()
            urllib.request.urlopen(url, timeout=1, context=ctx).read()
            return
        except Exception as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer: {last!r}")


def tree_pids(pid):
    """pid and all its descendants."""
    out = [pid]
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    except FileNotFoundError:
        children = []
    for c in children:
        out.extend(tree_pids(int(c)))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (after the comm field)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / CLK_TCK


def tcp_out_segments():
    """TCP segments sent by every socket on the machine so far (/proc/net/snmp, Tcp OutSegs).
    On loopback during a run that is the load generator's, the proxy's and the origins'."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def busy_ticks():
    """Busy clock ticks of each CPU so far (/proc/stat: all but idle and iowait)."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu":
                t = list(map(int, ticks))
                out.append(sum(t) - t[3] - t[4])
    return out


def origin_accepts():
    text = urllib.request.urlopen(f"http://127.0.0.1:{ORIGIN_STATUS}/status", timeout=2).read().decode()
    # "Active connections: N \nserver accepts handled requests\n A H R \n..."
    return int(text.splitlines()[2].split()[0])


class Proc:
    def __init__(self, argv, cpus=None, log=None):
        self.log = log
        self.p = subprocess.Popen(
            taskset(cpus) + argv,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab") if log else subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=10)
        except Exception:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except Exception:
                pass


def nginx_conf(work, name, body, workers=1):
    return f"""
daemon off;
master_process on;
worker_processes {workers};
pid {work}/{name}.pid;
error_log {work}/{name}.err;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {body}
}}
"""


def json_body(size):
    """`size` bytes of JSON records (an array, padded with spaces), the same every run: text
    that compresses like an API's answers (about 4:1 at gzip level 5), not a run of one byte."""
    import json
    import random

    rng = random.Random(8)
    words = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega north south "
             "east west river stone cloud ember maple cedar harbor signal vector packet proxy "
             "shard ring socket buffer").split()
    items, out = [], "[]"
    while True:
        items.append({"id": len(items), "name": " ".join(rng.choice(words) for _ in range(3)),
                      "score": round(rng.random() * 1000, 3), "tags": rng.sample(words, 3),
                      "active": rng.random() < 0.5, "ts": 1764000000 + rng.randrange(10**6)})
        text = json.dumps(items, separators=(",", ":"))
        if len(text) > size:
            return out + " " * (size - len(out))
        out = text


def start_origins(work, cpus):
    # nginx caps `return` text at 4 KiB: the 16 KiB body is a static file (sendfile).
    os.makedirs(os.path.join(work, "www"), exist_ok=True)
    with open(os.path.join(work, "www", "big.txt"), "w") as f:
        f.write("y" * 16384)
    with open(os.path.join(work, "www", "text.json"), "w") as f:
        f.write(json_body(16384))
    small = "x" * 100
    conf = nginx_conf(work, "origin", f"""
  server {{ listen 127.0.0.1:{ORIGIN_SMALL} reuseport backlog=4096; location / {{ return 200 "{small}"; }} }}
  server {{ listen 127.0.0.1:{ORIGIN_BIG} reuseport backlog=4096;
           location / {{ root {work}/www; try_files /big.txt =404; etag off; }}
           location /text {{ root {work}/www; default_type application/json;
                            try_files /text.json =404; etag off; }} }}
  server {{ listen 127.0.0.1:{ORIGIN_STATUS}; location /status {{ stub_status; }} }}
""")
    path = os.path.join(work, "origin.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = Proc(["nginx", "-c", path], cpus)
    wait_http(f"http://127.0.0.1:{ORIGIN_SMALL}/")
    return p


def coregate_cmd(work, workers):
    conf = f"""
[server]
workers = {workers}
[log]
level = "error"
[[listener]]
listen = "127.0.0.1:{PROXY_PORT}"
[[listener]]
listen = "127.0.0.1:{PROXY_TLS_PORT}"
[listener.tls]
cert = "{CERT}"
key = "{KEY}"
[[upstream]]
name = "small"
[[upstream.server]]
address = "127.0.0.1:{ORIGIN_SMALL}"
[[upstream]]
name = "big"
[[upstream.server]]
address = "127.0.0.1:{ORIGIN_BIG}"
[[route]]
path_prefix = "/big"
upstream = "big"
[[route]]
path_prefix = "/text"
upstream = "big"
compress = true
[[route]]
upstream = "small"
"""
    path = os.path.join(work, "coregate.toml")
    with open(path, "w") as f:
        f.write(conf)
    return [os.path.join(ROOT, "target/release/coregate"), "--config", path]


def nginx_proxy_cmd(work, workers):
    conf = nginx_conf(work, "proxy", f"""
  upstream small {{ server 127.0.0.1:{ORIGIN_SMALL}; keepalive 128; }}
  upstream big {{ server 127.0.0.1:{ORIGIN_BIG}; keepalive 128; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering on;
  server {{
    listen 127.0.0.1:{PROXY_PORT} reuseport backlog=4096;
    listen 127.0.0.1:{PROXY_TLS_PORT} ssl reuseport backlog=4096;
    ssl_certificate {CERT};
    ssl_certificate_key {KEY};
    location /big {{ proxy_pass http://big; }}
    location /text {{ proxy_pass http://big; gzip on; gzip_proxied any; gzip_comp_level 5;
                     gzip_types application/json; }}
    location / {{ proxy_pass http://small; }}
  }}
""", workers)
    path = os.path.join(work, "proxy-nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-c", path]


def haproxy_cmd(work, workers):
    pem = os.path.join(work, "haproxy.pem")
    with open(pem, "w") as f:
        f.write(open(CERT).read() + open(KEY).read())
    conf = f"""
global
  nbthread {workers}
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{PROXY_PORT}
  bind 127.0.0.1:{PROXY_TLS_PORT} ssl crt {pem} alpn http/1.1
  acl big path_beg /big
  acl text path_beg /text
  use_backend big if big
  use_backend text if text
  default_backend small
backend small
  server s1 127.0.0.1:{ORIGIN_SMALL}
backend big
  server b1 127.0.0.1:{ORIGIN_BIG}
backend text
  compression algo gzip
  compression type application/json
  server t1 127.0.0.1:{ORIGIN_BIG}
"""
    path = os.path.join(work, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return ["haproxy", "-f", path]


PROXIES = {"coregate": coregate_cmd, "nginx": nginx_proxy_cmd, "haproxy": haproxy_cmd}


def parse_wrk(out):
    def lat(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"reqs": reqs, "rps": rps, "p50": lat(50), "p99": lat(99), "errors": errors}


def perf_pct(report, sym):
    """Children share (%) of kernel symbol `sym` in a `perf report --children` listing."""
    m = re.search(r"^\s+([\d.]+)%\s+[\d.]+%\s+\[k\] " + re.escape(sym) + r"\s*$", report, re.M)
    return float(m.group(1)) if m else 0.0


def breakdown(data, cpu_us):
    """Split cpu_us into kernel TCP/IP, other kernel and user space from the proxy's samples."""
    report = lambda *a: subprocess.run(["perf", "report", "-i", data, "-g", "none", *a],
                                       capture_output=True, text=True).stdout
    children = report("--children", "--sort", "sym")
    dsos = report("--no-children", "--sort", "dso")
    m = re.search(r"([\d.]+)%\s+\[kernel.kallsyms\]", dsos)
    kernel = float(m.group(1)) if m else 0.0
    tcp = perf_pct(children, "tcp_sendmsg") + perf_pct(children, "tcp_recvmsg")
    return {"tcp_us": tcp / 100 * cpu_us, "kernel_other_us": (kernel - tcp) / 100 * cpu_us,
            "user_us": (100.0 - kernel) / 100 * cpu_us}


def syscalls(counts):
    """System calls the proxy's processes made, from a `perf stat -x,` output file (NaN when
    perf could not count them, for example without access to the tracepoint)."""
    try:
        lines = open(counts).readlines()
    except FileNotFoundError:
        return float("nan")
    for line in lines:
        fields = line.split(",")
        if len(fields) > 2 and fields[2] == "raw_syscalls:sys_enter" and fields[0].isdigit():
            return int(fields[0])
    return float("nan")


def pace_script(work, ms):
    """A wrk script that makes each connection wait `ms` after every response."""
    path = os.path.join(work, "pace.lua")
    with open(path, "w") as f:
        f.write(f"function delay() return {ms} end\n")
    return path


MODES = {
    "pinned": "1 worker on CPU 0; wrk and origins on CPU 1",
    "shared": "2 workers, nothing pinned",
}
# In shared mode, coregate also runs with 1 worker in every round, for the scaling table.
ONE_WORKER = "coregate-1w"


def one_run(name, mode, scenario, work, args):
    workers = 2 if mode == "shared" and name != ONE_WORKER else 1
    name = "coregate" if name == ONE_WORKER else name
    proxy_cpus = "0" if mode == "pinned" else None
    load_cpus = "1" if mode == "pinned" else None
    proxy = Proc(PROXIES[name](work, workers), proxy_cpus, os.path.join(work, f"{name}.log"))
    try:
        _, scheme, path, extra = SCENARIOS[scenario]
        if args.pace_ms:
            extra = [*extra, "-s", pace_script(work, args.pace_ms)]
        port = PROXY_TLS_PORT if scheme == "https" else PROXY_PORT
        url = f"{scheme}://127.0.0.1:{port}{path}"
        try:
            wait_http(url)
        except RuntimeError:
            log = open(proxy.log, errors="replace").read()[-2000:] if proxy.log else ""
            raise RuntimeError(f"{name} did not answer {url}; its log:\n{log}")
        # Warm-up (pools, TLS sessions, caches), not measured.
        sh(taskset(load_cpus) + ["wrk", "-t1", f"-c{args.connections}", "-d2s", *extra, url],
           capture_output=True)
        accepts0, cpu0 = origin_accepts(), cpu_seconds(proxy.pid)
        segs0 = tcp_out_segments()
        perf = stat = None
        if args.breakdown and mode == "pinned":
            data, counts = os.path.join(work, "perf.data"), os.path.join(work, "perf.stat")
            if os.path.exists(counts):
                os.remove(counts)  # a failed count must not read the previous run's
            pids = ",".join(map(str, tree_pids(proxy.pid)))
            perf = subprocess.Popen(["perf", "record", "-q", "-o", data, "-p", pids, "-g", "--",
                                     "sleep", str(args.duration)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stat = subprocess.Popen(["perf", "stat", "-x,", "-o", counts, "-e",
                                     "raw_syscalls:sys_enter", "-p", pids, "--",
                                     "sleep", str(args.duration)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        busy0, t0 = busy_ticks(), time.monotonic()
        out = subprocess.run(
            taskset(load_cpus) + ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                                  "--latency", *extra, url],
            capture_output=True, text=True, check=True).stdout
        busy1, t1 = busy_ticks(), time.monotonic()
        cpu1, segs1 = cpu_seconds(proxy.pid), tcp_out_segments()
        accepts1 = origin_accepts()
        r = parse_wrk(out)
        reqs = max(r["reqs"], 1)
        r["cpu_us"] = (cpu1 - cpu0) * 1e6 / reqs
        r["segments"] = (segs1 - segs0) / reqs
        # Cores kept busy: by the proxy, and by everything else (wrk, the origins, the kernel's
        # work on their behalf). In pinned mode the rest is CPU 1: near 1.00, the load side is
        # saturated and caps req/s whatever the proxy costs.
        machine = sum(b - a for a, b in zip(busy0, busy1)) / CLK_TCK / (t1 - t0)
        r["proxy_cores"] = (cpu1 - cpu0) / (t1 - t0)
        r["load_cores"] = machine - r["proxy_cores"]
        if perf:
            perf.wait()
            stat.wait()
            r.update(breakdown(data, r["cpu_us"]))
            r["syscalls"] = syscalls(counts) / reqs
        r["upstream_conns"] = accepts1 - accepts0 - 1  # minus our own stub_status request
        return r
    finally:
        proxy.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--pace-ms", type=int, default=0,
                    help="each connection waits this long between requests (same load for all)")
    ap.add_argument("--breakdown", action="store_true",
                    help="pinned mode: split CPU µs/req into kernel TCP/IP, other kernel, user (perf)")
    args = ap.parse_args()
    if args.pace_ms < 0:
        ap.error("--pace-ms must be 0 (no pacing) or a number of milliseconds")
    modes, scenarios, proxies = args.modes.split(","), args.scenarios.split(","), args.proxies.split(",")
    for value, known, what in ((modes, MODES, "mode"), (scenarios, SCENARIOS, "scenario"),
                               (proxies, PROXIES, "proxy")):
        for v in value:
            if v not in known:
                ap.error(f"unknown {what} {v!r}; known: {', '.join(known)}")

    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    results = {}
    with tempfile.TemporaryDirectory(prefix="coregate-compare-") as work:
        os.chmod(work, 0o755)  # nginx workers run unprivileged and read the 16 KiB body here
        for mode in modes:
            origin = start_origins(work, "1" if mode == "pinned" else None)
            try:
                for scenario in scenarios:
                    names = proxies + [ONE_WORKER] if mode == "shared" and "coregate" in proxies else proxies
                    for run in range(args.runs):
                        for name in names:  # interleaved: one run of each, then the next
                            r = one_run(name, mode, scenario, work, args)
                            results.setdefault((mode, scenario, name), []).append(r)
                            print(f"# {mode} {scenario} {name} run {run + 1}: "
                                  f"{r['rps']:.0f} req/s, {r['cpu_us']:.1f} µs/req, "
                                  f"p99 {r['p99']:.2f} ms, errors {r['errors']}",
                                  file=sys.stderr, flush=True)
            finally:
                origin.stop()

    med = lambda rs, k: statistics.median(x[k] for x in rs)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    pace = f", each connection pausing {args.pace_ms} ms between requests" if args.pace_ms else ""
    print(f"\nMachine: {os.cpu_count()} vCPU ({cpu}), kernel {os.uname().release}. "
          f"wrk -t1 -c{args.connections} -d{args.duration}s{pace}, median of {args.runs} interleaved runs.\n")
    for mode in modes:
        print(f"**{mode}** ({MODES[mode]})\n")
        print("| scenario | proxy | req/s | p50 ms | p99 ms | CPU µs/req | µs/req ÷ best peer | upstream conns "
              "| errors | cores busy: proxy / rest |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for scenario in scenarios:
            peers = [med(results[(mode, scenario, p)], "cpu_us") for p in proxies
                     if p != "coregate" and (mode, scenario, p) in results]
            best = min(peers) if peers else float("nan")
            if not best > 0:
                best = float("nan")  # a peer that served nothing: no ratio, not a crash
            for name in proxies:
                rs = results[(mode, scenario, name)]
                c = med(rs, "cpu_us")
                print(f"| {SCENARIOS[scenario][0]} | {name} | {med(rs, 'rps'):.0f} | {med(rs, 'p50'):.2f} | "
                      f"{med(rs, 'p99'):.2f} | {c:.1f} | {c / best:.2f} | {med(rs, 'upstream_conns'):.0f} | "
                      f"{sum(x['errors'] for x in rs)} | "
                      f"{med(rs, 'proxy_cores'):.2f} / {med(rs, 'load_cores'):.2f} |")
        print()
        if "coregate" in proxies and len(proxies) > 1:
            rounds = []
            for scenario in scenarios:
                per_run = paired_ratios(results, mode, scenario, proxies)
                rounds.append(f"{SCENARIOS[scenario][0]} {', '.join(f'{x:.2f}' for x in per_run)}")
            print(f"Per run, coregate ÷ the better peer of the same round: {'; '.join(rounds)}.\n")
        if args.breakdown and mode == "pinned":
            print("**where the CPU goes** (pinned; µs/req and share of the proxy's perf samples, median of runs)\n")
            print("| scenario | proxy | CPU µs/req | kernel TCP/IP | other kernel | user space "
                  "| TCP segments/req | syscalls/req |")
            print("|---|---|---|---|---|---|---|---|")
            for scenario in scenarios:
                for name in proxies:
                    rs = results[(mode, scenario, name)]
                    c = med(rs, "cpu_us")
                    parts = [med(rs, k) for k in ("tcp_us", "kernel_other_us", "user_us")]
                    total = sum(parts) or 1
                    cells = " | ".join(f"{v:.1f} ({v / total * 100:.0f}%)" for v in parts)
                    print(f"| {SCENARIOS[scenario][0]} | {name} | {c:.1f} | {cells} | "
                          f"{med(rs, 'segments'):.2f} | {med(rs, 'syscalls'):.2f} |")
            print()
    if "shared" in modes and "coregate" in proxies:
        scaling_table(results, scenarios, med)


def ratio(a, b):
    """a ÷ b, or NaN when b is 0 (a run that served nothing): no ratio, not a crash that loses
    every run's measurements at print time."""
    return a / b if b > 0 else float("nan")


def scaling_table(results, scenarios, med):
    """2 workers against 1, both unpinned, and whether this machine could show 1.7x at all: at
    1.7x the rate, the proxy and the load side need 1.7x the cores they kept busy with 1 worker
    (at constant CPU per request); when that is more than the machine has, the load side
    (wrk and the origins) caps the total, whatever the proxy does."""
    cores = os.cpu_count()
    print("**scaling** (coregate, nothing pinned, in the shared rounds above: req/s with 2 workers ÷ with 1 worker)\n")
    print("| scenario | 1 worker req/s | 2 workers req/s | 2 ÷ 1 | cores busy at 1 worker: proxy / rest "
          f"| cores 1.7× would need (of {cores}) | the 1.7× target applies |")
    print("|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        one, two = results[("shared", scenario, ONE_WORKER)], results[("shared", scenario, "coregate")]
        proxy, rest = med(one, "proxy_cores"), med(one, "load_cores")
        need = 1.7 * (proxy + rest)
        print(f"| {SCENARIOS[scenario][0]} | {med(one, 'rps'):.0f} | {med(two, 'rps'):.0f} | "
              f"{ratio(med(two, 'rps'), med(one, 'rps')):.2f} | {proxy:.2f} / {rest:.2f} | {need:.2f} | "
              f"{'yes' if need <= cores else 'no: the machine caps it'} |")
    print()
    rounds = [f"{SCENARIOS[sc][0]} " + ", ".join(
        f"{ratio(b['rps'], a['rps']):.2f}" for a, b in zip(results[("shared", sc, ONE_WORKER)],
                                                    results[("shared", sc, "coregate")]))
        for sc in scenarios]
    print(f"Per round, 2 workers ÷ 1 worker: {'; '.join(rounds)}.\n")


def paired_ratios(results, mode, scenario, proxies):
    """CPU µs/req of each coregate run ÷ that of the better peer in the same round."""
    ours = results[(mode, scenario, "coregate")]
    peers = [results[(mode, scenario, p)] for p in proxies if p != "coregate"]
    ratios = []
    for i, run in enumerate(ours):
        best = min(p[i]["cpu_us"] for p in peers)
        # A peer that served nothing can show 0 CPU: no ratio, not a crash after the whole run.
        ratios.append(run["cpu_us"] / best if best > 0 else float("nan"))
    return ratios


if __name__ == "__main__":
    main()
