#!/usr/bin/env python3
"""The soak's client load (lvsperf soak runs it in the client namespace).

A steady stream of short HTTP/1.0 connections to VIP:PORT at --rate per
second, plus a burst of --burst-size requests (--burst-conc at a time)
every --burst-every seconds, for --duration seconds. A request fails when it
does not complete (connect, send, read "200" and the server's name) within
--timeout seconds.

Output, one JSON object per line on stdout, per second of request start
time (emitted once every request of that second has finished):
  {"t": <unix second>, "ok": N, "fail": N, "burst": N, "by": {"rs1": N, ...},
   "fails": [[<start time>, "<error>"], ...]}
and a final {"done": true}.
"""
import argparse
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

lock = threading.Lock()
buckets = {}


def bucket(sec):
    b = buckets.get(sec)
    if b is None:
        b = {"t": sec, "ok": 0, "fail": 0, "burst": 0, "by": {}, "fails": [], "pending": 0}
        buckets[sec] = b
    return b


def one(vip, port, timeout, burst):
    t0 = time.time()
    sec = int(t0)
    with lock:
        b = bucket(sec)
        b["pending"] += 1
    err = None
    name = None
    try:
        with socket.create_connection((vip, port), timeout=timeout) as s:
            s.settimeout(max(0.05, timeout - (time.time() - t0)))
            s.sendall(b"GET / HTTP/1.0\r\nHost: soak\r\n\r\n")
            data = b""
            while True:
                if time.time() - t0 > timeout:
                    raise TimeoutError("timed out")
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
            err = "status " + head.split(b"\r\n")[0].decode(errors="replace")[:40]
        else:
            name = body.split(b" ")[0].decode(errors="replace") or "?"
    except Exception as e:  # noqa: BLE001 - every failure is counted
        err = type(e).__name__ + (f" {e.errno}" if getattr(e, "errno", None) else "")
    with lock:
        b = bucket(sec)
        b["pending"] -= 1
        if burst:
            b["burst"] += 1
        if err is None:
            b["ok"] += 1
            b["by"][name] = b["by"].get(name, 0) + 1
        else:
            b["fail"] += 1
            b["fails"].append([round(t0, 3), err])


def emit(upto):
    with lock:
        ready = sorted(s for s, b in buckets.items() if s < upto and b["pending"] == 0)
        out = [buckets.pop(s) for s in ready]
    for b in out:
        del b["pending"]
        print(json.dumps(b), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--burst-every", type=float, default=20)
    ap.add_argument("--burst-size", type=int, default=150)
    ap.add_argument("--burst-conc", type=int, default=30)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    steady = ThreadPoolExecutor(max_workers=max(8, int(a.rate * a.timeout * 2)))
    bursty = ThreadPoolExecutor(max_workers=a.burst_conc)
    start = time.time()
    end = start + a.duration
    i = 0
    next_burst = start + a.burst_every / 2
    last_emit = start
    while True:
        now = time.time()
        if now >= end:
            break
        due = start + i / a.rate
        if due <= now:
            steady.submit(one, a.vip, a.port, a.timeout, False)
            i += 1
            continue
        if now >= next_burst:
            for _ in range(a.burst_size):
                bursty.submit(one, a.vip, a.port, a.timeout, True)
            next_burst += a.burst_every
        if now - last_emit >= 1:
            emit(int(now) - 1)
            last_emit = now
        time.sleep(min(due - now, 0.05))
    steady.shutdown(wait=True)
    bursty.shutdown(wait=True)
    emit(int(time.time()) + 10)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
