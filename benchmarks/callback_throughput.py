"""Encrypted add_external_contact callbacks posted over loopback to the service under gunicorn.

Measures accepted callbacks per second and p50/p99 latency for the real endpoint (signature check,
decryption, defusedxml, the PostgreSQL inbox insert; the relay in the workers queues the jobs, and no worker
runs here) and, in the same run and the same way, for a bare Flask endpoint under the same gunicorn
settings, then prints the ratio. Every callback is distinct (no dedup shortcut).

Both servers run side by side for the whole run and are measured in alternating rounds (bare, callback,
bare, callback, …), so drift in the machine's load falls on both alike; the figures are the medians of
the rounds. Two load generators, reported separately, since the generator shares the 2 cores with the
servers and its own cost shapes the ratio:
  lean        one thread, non-blocking sockets, pre-serialized requests (cheap per request)
  httpclient  one thread per connection with http.client (the original generator; expensive per request)

    .venv/bin/python benchmarks/callback_throughput.py [--requests 3000] [--concurrency 8] [--rounds 3]
        [--clients lean,httpclient] [--workers 2] [--threads 8] [--sync-commit on|off|both]
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bot.signing import envelope, event_xml  # noqa: E402

SETTINGS = {
    "DEMO": "0",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/bench_callbacks",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "SECRET_KEY": "benchmark-secret-key-0123456789",
    "WECOM_CORP_ID": "wwbenchcorp",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "bench-secret",
    "WECOM_TOKEN": "benchtoken",
    "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_API_BASE": "http://127.0.0.1:5998/cgi-bin/",
}


def start_gunicorn(target: str, port: int, env: dict, workers: int, threads: int, worker_class: str):
    cmd = [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-k", worker_class, "--threads", str(threads),
           "-b", f"127.0.0.1:{port}", "--log-level", "warning", target]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn {target} did not start: {proc.stderr.read().decode()[-2000:]}")


def summary(latencies: list[float], elapsed: float, statuses: dict) -> dict:
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "statuses": statuses,
    }


def load_httpclient(port: int, requests: list[tuple[str, str]], concurrency: int) -> dict:
    """The original generator: a thread per connection, http.client builds and parses every message."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [requests[i::concurrency] for i in range(concurrency)]

    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, codes = [], []
        for url, body in chunk:
            t0 = time.perf_counter()
            conn.request("POST", url, body=body.encode(), headers={"Content-Type": "text/xml"})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            codes.append(resp.status)
        with lock:
            latencies.extend(mine)
            for code in codes:
                statuses[code] = statuses.get(code, 0) + 1

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(latencies, time.perf_counter() - t0, statuses)


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


def raw_request(port: int, url: str, body: str) -> bytes:
    data = body.encode()
    return (f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def load_lean(port: int, requests: list[tuple[str, str]], concurrency: int) -> dict:
    """One thread drives every connection with non-blocking sockets and pre-serialized requests."""
    chunks = [[raw_request(port, u, b) for u, b in requests[i::concurrency]] for i in range(concurrency)]
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    state = {}
    for chunk in chunks:
        if not chunk:
            continue
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state[sock] = {"todo": chunk, "next": 0, "buf": b"", "t0": 0.0}
        sel.register(sock, selectors.EVENT_READ)

    def send_next(sock, st):
        st["buf"], st["t0"] = b"", time.perf_counter()
        sock.sendall(st["todo"][st["next"]])  # small requests: the kernel takes them whole
        st["next"] += 1

    t0 = time.perf_counter()
    for sock, st in state.items():
        send_next(sock, st)
    open_socks = len(state)
    while open_socks:
        for key, _ in sel.select(timeout=10):
            sock = key.fileobj
            st = state[sock]
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed a connection")
            st["buf"] += chunk
            head_end = st["buf"].find(b"\r\n\r\n")
            if head_end < 0:
                continue
            m = _CONTENT_LENGTH.search(st["buf"], 0, head_end + 2)
            if len(st["buf"]) < head_end + 4 + (int(m.group(1)) if m else 0):
                continue
            latencies.append(time.perf_counter() - st["t0"])
            code = int(st["buf"][9:12])
            statuses[code] = statuses.get(code, 0) + 1
            if st["next"] < len(st["todo"]):
                send_next(sock, st)
            else:
                sel.unregister(sock)
                sock.close()
                open_socks -= 1
    return summary(latencies, time.perf_counter() - t0, statuses)


LOADERS = {"lean": load_lean, "httpclient": load_httpclient}


def commit_latency(engine, n: int = 100) -> float:
    """Median ms of a durable one-row commit: how fast the disk flushes the WAL right now."""
    import sqlalchemy

    times = []
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE IF NOT EXISTS bench_flush_probe (x int)"))
        conn.commit()
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute(sqlalchemy.text("INSERT INTO bench_flush_probe VALUES (1)"))
            conn.commit()
            times.append(time.perf_counter() - t0)
        conn.execute(sqlalchemy.text("TRUNCATE bench_flush_probe"))
        conn.commit()
    return statistics.median(times) * 1000


def ensure_database(url: str) -> None:
    """The benchmark gets its own database, so it never races the test suite's."""
    import sqlalchemy

    base, name = url.split("?")[0].rsplit("/", 1)
    engine = sqlalchemy.create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                                      isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per round and endpoint")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="lean,httpclient")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--sync-commit", choices=("on", "off", "both"), default="both",
                        help="CALLBACK_SYNC_COMMIT of the service: on (durable, the default), off (the opt-in "
                             "trade-off, see docs/callbacks.md), or both, measured side by side")
    parser.add_argument("--database-url", default=SETTINGS["DATABASE_URL"])
    args = parser.parse_args()
    clients = args.clients.split(",")
    env = {**SETTINGS, "DATABASE_URL": args.database_url}

    ensure_database(args.database_url)
    subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True)
    import redis
    import sqlalchemy

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    engine = sqlalchemy.create_engine(args.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("TRUNCATE callback_inbox"))

    base = int(time.time())
    serial = iter(range(10**9))

    def callbacks(n: int, prefix: str) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            i = next(serial)
            out.append(envelope(env, event_xml("add_external_contact", external_userid=f"{prefix}{i:07d}",
                                               create_time=base + i, WelcomeCode=f"code{i}"), nonce=f"n{i}"))
        return out

    load_before = os.getloadavg()
    commit_before = commit_latency(engine)
    servers = {"bare Flask endpoint": ("benchmarks.bare_app:app", 5811, {})}
    if args.sync_commit in ("on", "both"):
        servers["/wecom/callback"] = ("app:app", 5812, {"CALLBACK_SYNC_COMMIT": "on"})
    if args.sync_commit in ("off", "both"):
        servers["/wecom/callback (sync off)"] = ("app:app", 5813, {"CALLBACK_SYNC_COMMIT": "off"})
    procs = [start_gunicorn(t, p, {**env, **extra}, args.workers, args.threads, args.worker_class)
             for t, p, extra in servers.values()]
    results: dict[tuple[str, str], list[dict]] = {}
    sent = 0
    try:
        for client in clients:
            load = LOADERS[client]
            for name, (_, port, _) in servers.items():  # warm all: connections, prepared statements, caches
                load(port, callbacks(300, "wmWarm"), args.concurrency)
                sent += 300
            for _ in range(args.rounds):
                for name, (_, port, _) in servers.items():
                    reqs = callbacks(args.requests, "wmBench")
                    results.setdefault((client, name), []).append(load(port, reqs, args.concurrency))
                    sent += len(reqs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    with engine.connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT count(*) FROM callback_inbox")).scalar()

    commit_after = commit_latency(engine)
    print(f"{args.requests} distinct encrypted callbacks per round, {args.rounds} alternating rounds, "
          f"{args.concurrency} client connections; gunicorn {args.workers} workers x {args.threads} threads "
          f"({args.worker_class}) for every server; PostgreSQL + Redis on loopback")
    print(f" machine: load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after; one durable "
          f"single-row commit takes {commit_before:.2f} ms before, {commit_after:.2f} ms after (median)")
    for client in clients:
        print(f" client: {client}")
        med = {}
        for name in servers:
            rounds = results[(client, name)]
            med[name] = {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50_ms", "p99_ms")}
            codes = {}
            for r in rounds:
                for code, n in r["statuses"].items():
                    codes[code] = codes.get(code, 0) + n
            per_round = ", ".join(f"{r['rps']:.0f}" for r in rounds)
            print(f"  {name:22s} {med[name]['rps']:7.0f} req/s   p50 {med[name]['p50_ms']:6.2f} ms   "
                  f"p99 {med[name]['p99_ms']:6.2f} ms   rounds [{per_round}]   statuses {codes}")
        for name in list(servers)[1:]:
            ratios = [c["rps"] / b["rps"] for b, c in zip(results[(client, "bare Flask endpoint")],
                                                           results[(client, name)])]
            print(f"  {name}: {med[name]['rps'] / med['bare Flask endpoint']['rps']:.0%} of the bare endpoint's "
                  f"throughput (per round: {', '.join(f'{r:.0%}' for r in ratios)})")
    expected = sent // len(servers) * (len(servers) - 1)
    print(f" inbox rows stored: {stored} of {expected} callbacks sent to the callback endpoints")


if __name__ == "__main__":
    main()
