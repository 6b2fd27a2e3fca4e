#!/usr/bin/env python3
"""A long-lived TCP stream for fail-over tests.

server: `stream.py server --port P --name N [--v6]` answers each line of each
connection with `N <line>`; prints `ready` once listening.

client: `stream.py client --target IP:PORT --interval S --duration S`
opens one connection and, every interval, sends `<seq>` and waits for the
answer (TCP retransmits as long as it takes). Each answer is printed as
`<seq> <sent> <received> <server>` (monotonic seconds). On an error it
prints `ERROR <what>` and exits 2; after `duration` it prints `done` and
exits 0.
"""
import argparse
import socket
import sys
import threading
import time


def serve(name, port, v6):
    if v6:
        # Both families: IPv4 clients come as mapped addresses.
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if v6 else "0.0.0.0", port))
    s.listen(64)
    print("ready", flush=True)

    def one(c):
        f = c.makefile("rwb", buffering=0)
        try:
            for line in f:
                c.sendall(name.encode() + b" " + line)
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def client(target, interval, duration, stall):
    host, port = target.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=5)
    c.settimeout(stall)
    print(f"local {c.getsockname()[0]}:{c.getsockname()[1]}", flush=True)
    f = c.makefile("rb", buffering=0)
    end = time.monotonic() + duration
    seq = 0
    while time.monotonic() < end:
        seq += 1
        sent = time.monotonic()
        try:
            c.sendall(f"{seq}\n".encode())
            line = f.readline()
        except OSError as e:
            print(f"ERROR {seq} {type(e).__name__} {e}", flush=True)
            sys.exit(2)
        if not line:
            print(f"ERROR {seq} closed", flush=True)
            sys.exit(2)
        got = time.monotonic()
        server, echoed = line.decode().split()
        if int(echoed) != seq:
            print(f"ERROR {seq} echoed {echoed}", flush=True)
            sys.exit(2)
        print(f"{seq} {sent:.6f} {got:.6f} {server}", flush=True)
        time.sleep(max(0.0, interval - (got - sent)))
    print("done", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--v6", action="store_true", help="listen on both families")
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--interval", type=float, default=0.05)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--stall", type=float, default=30.0)
    a = ap.parse_args()
    if a.cmd == "server":
        serve(a.name, a.port, a.v6)
    else:
        client(a.target, a.interval, a.duration, a.stall)


if __name__ == "__main__":
    main()
