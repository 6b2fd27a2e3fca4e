#!/usr/bin/env python3
"""UDP echo of large datagrams for tests/rig_frag.rs.

serve --name N --port P: one socket per local address (the reply leaves
from the address the request went to: the VIP on a DR real server), each
datagram answered with "N <client address>\n" followed by the datagram
itself, so answers are larger than the MTU too.

ask --target HOST:PORT --size S --count C: sends C datagrams of S bytes
(each with its own pattern), waits for each echo and checks it byte for
byte; prints "ok NAME CLIENT" per good answer, "bad ..." otherwise; exits
1 unless every answer came back whole.
"""
import argparse
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import peer, udp_per_address  # noqa: E402


def serve(a):
    def one(s):
        while True:
            data, addr = s.recvfrom(65535)
            s.sendto(f"{a.name} {peer(addr)}\n".encode() + data, addr)

    threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in udp_per_address(a.port)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


def ask(a):
    t = a.target
    host, _, port = t[1:].partition("]:") if t.startswith("[") else t.rpartition(":")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    good = 0
    for i in range(a.count):
        payload = bytes((i * 31 + j) % 251 for j in range(a.size))
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        try:
            s.connect((host, int(port)))
            s.send(payload)
            data = s.recv(65535)
        except OSError as e:
            print(f"bad {i}: {e}", flush=True)
            continue
        finally:
            s.close()
        head, _, body = data.partition(b"\n")
        if body == payload:
            good += 1
            print(f"ok {head.decode(errors='replace')}", flush=True)
        else:
            print(f"bad {i}: {len(body)} bytes back of {len(payload)}", flush=True)
    return 0 if good == a.count else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("ask")
    p.add_argument("--target", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    return serve(a) if a.cmd == "serve" else ask(a)


if __name__ == "__main__":
    sys.exit(main())
