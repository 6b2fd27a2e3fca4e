#!/usr/bin/env python3
"""Many long-lived TCP streams at once, for ECMP tests.

`streams.py --target IP:PORT --count N --interval S --duration S --stall S
[--mark FILE]`: opens N connections to a `stream.py server`, one thread
each; every interval each sends `<seq>` and waits for `<server> <seq>`
(TCP retransmits as long as it takes, up to --stall). Prints `ready` once
every connection is open, then at the end one line per stream:
`stream <i> <local port> <servers seen, comma-separated> <answers>
<longest gap in s> <gap start (monotonic)> <ok|ERROR ...>`, then `done`.
Exits 0 when every stream ran to the end, 2 otherwise.
"""
import argparse
import socket
import sys
import threading
import time


def one(i, target, interval, end, stall, out):
    host, port = target
    res = {"servers": [], "answers": 0, "gap": 0.0, "gap_at": 0.0, "err": None}
    out[i] = res
    try:
        c = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        res["err"] = f"connect {type(e).__name__} {e}"
        res["port"] = 0
        return
    res["port"] = c.getsockname()[1]
    c.settimeout(stall)
    f = c.makefile("rb", buffering=0)
    seq = 0
    last = time.monotonic()
    ready.wait()
    while time.monotonic() < end:
        seq += 1
        try:
            c.sendall(f"{seq}\n".encode())
            line = f.readline()
        except OSError as e:
            res["err"] = f"ERROR {seq} {type(e).__name__} {e}"
            return
        if not line:
            res["err"] = f"ERROR {seq} closed"
            return
        now = time.monotonic()
        server, echoed = line.decode().split()
        if int(echoed) != seq:
            res["err"] = f"ERROR {seq} echoed {echoed}"
            return
        if server not in res["servers"]:
            res["servers"].append(server)
        res["answers"] += 1
        if now - last > res["gap"]:
            res["gap"], res["gap_at"] = now - last, last
        last = now
        time.sleep(interval)
    c.close()


ready = threading.Event()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--stall", type=float, default=20)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    out = {}
    end = time.monotonic() + a.duration
    ts = []
    for i in range(a.count):
        t = threading.Thread(
            target=one, args=(i, (host, int(port)), a.interval, end, a.stall, out), daemon=True
        )
        t.start()
        ts.append(t)
    while len(out) < a.count or any("port" not in r for r in out.values()):
        time.sleep(0.01)
    print("ready", flush=True)
    ready.set()
    for t in ts:
        t.join()
    bad = 0
    for i in range(a.count):
        r = out[i]
        status = r["err"] or "ok"
        bad += r["err"] is not None
        print(
            f"stream {i} {r['port']} {','.join(r['servers']) or '-'} {r['answers']} "
            f"{r['gap']:.3f} {r['gap_at']:.3f} {status}",
            flush=True,
        )
    print("done", flush=True)
    sys.exit(2 if bad else 0)


if __name__ == "__main__":
    main()
