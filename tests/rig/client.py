#!/usr/bin/env python3
"""Traffic drivers and probes run inside a rig namespace.

Every subcommand is bounded: each request has its own timeout and the whole
run has a deadline, after which the remaining requests are reported as
failed without being tried. Output is line-oriented for the Rust side:

  http  --target ADDR:PORT --count N [--bind SRC]
                                       one line per request, each a new TCP
                                       connection: "ok <body>" or "err <why>"
  udp   --target ADDR:PORT --count N   same, each from a new socket (port)
  download --target ADDR:PORT --kib K --count N
                                       N concurrent GET /slow/K: per transfer
                                       "ok <server> <bytes>" when all K KiB
                                       arrived, else "err <server> <bytes> <why>"
  tcp   --target ADDR:PORT             reads one banner line: "ok <line>"
  ping  --target ADDR --count N        ICMP/ICMPv6 echo: "ok" or "err <why>"
  arp   --iface IF --src IP --target IP
                                       broadcasts one ARP request and prints
                                       "reply <mac>" for every answer
  sniff --iface IF --src IP --dst IP --sport P --dport P --flags SA
                                       prints "ready", then "seen" when a TCP
                                       segment with exactly these flags (and
                                       addresses/ports) arrives, else "timeout"
        (or --icmp-unreach: an IPv4 ICMP destination unreachable SRC -> DST)
  ipip  --iface IF --dst-mac MAC --outer-src IP --outer-dst IP
        --inner-src IP --inner-dst IP --sport P --dport P
                                       sends one IPIP frame carrying a TCP SYN
"""
import argparse
import os
import select
import socket
import struct
import sys
import time


def split_target(t):
    if t.startswith("["):
        host, _, port = t[1:].partition("]:")
    else:
        host, _, port = t.rpartition(":")
    return host, int(port)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def out(line):
    print(line, flush=True)


def one_http(host, port, timeout, bind):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if bind:
            s.bind((bind, 0))
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: rig\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status + " ":
        raise OSError(f"bad status `{status}`")
    return body.decode(errors="replace").strip()


def one_udp(host, port, timeout, bind):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        if bind:
            s.bind((bind, 0))
        s.connect((host, port))
        s.send(b"ping")
        return s.recv(2048).decode(errors="replace").strip()
    finally:
        s.close()


def one_tcp(host, port, timeout, bind):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if bind:
            s.bind((bind, 0))
        s.connect((host, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()
    finally:
        s.close()


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def one_ping(host, seq, timeout):
    v6 = family(host) == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    s = socket.socket(family(host), socket.SOCK_RAW, proto)
    try:
        ident = os.getpid() & 0xFFFF
        payload = b"lvsfwd-rig-ping"
        typ = 128 if v6 else 8
        hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
        # The kernel fills in the ICMPv6 checksum (it needs the pseudo-header).
        ck = 0 if v6 else csum(hdr + payload)
        s.sendto(struct.pack("!BBHHH", typ, 0, ck, ident, seq) + payload, (host, 0))
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                raise OSError("timeout")
            data, addr = s.recvfrom(2048)
            if not v6:
                data = data[(data[0] & 0xF) * 4:]
            if len(data) < 8:
                continue
            t, _, _, i, q = struct.unpack("!BBHHH", data[:8])
            if t == (129 if v6 else 0) and i == ident and q == seq and addr[0] == host:
                return "ok"
    finally:
        s.close()


def one_download(host, port, kib, timeout, results, i):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    data = b""
    try:
        s.connect((host, port))
        s.sendall(f"GET /slow/{kib} HTTP/1.0\r\nHost: rig\r\n\r\n".encode())
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        why = None
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    finally:
        s.close()
    _, _, body = data.partition(b"\r\n\r\n")
    server = body.split(b" ", 1)[0].decode(errors="replace") if body else "-"
    if why is None and len(body) == kib * 1024:
        results[i] = f"ok {server} {len(body)}"
    else:
        results[i] = f"err {server} {len(body)} {why or 'short body'}"


def download(a):
    import threading
    host, port = split_target(a.target)
    results = [None] * a.count
    threads = [threading.Thread(target=one_download, args=(host, port, a.kib, a.timeout, results, i))
               for i in range(a.count)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    out("started")
    deadline = time.monotonic() + a.deadline
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    for r in results:
        out(r or "err - 0 deadline")


def run_requests(a, fn):
    host, port = split_target(a.target)
    deadline = time.monotonic() + a.deadline
    for i in range(a.count):
        if time.monotonic() >= deadline:
            out("err deadline")
            continue
        try:
            out("ok " + fn(host, port, a.timeout, a.bind))
        except Exception as e:  # every failure is a reported line, not a crash
            out(f"err {type(e).__name__}: {e}")


def mac_of(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def fmt_mac(b):
    return ":".join(f"{x:02x}" for x in b)


def arp(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((a.iface, 0))
    me = mac_of(a.iface)
    req = (b"\xff" * 6 + me + b"\x08\x06"
           + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
           + me + socket.inet_aton(a.src) + b"\0" * 6 + socket.inet_aton(a.target))
    s.send(req)
    end = time.monotonic() + a.timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        f = s.recv(2048)
        if len(f) < 42 or f[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", f[20:22])[0]
        if op == 2 and f[28:32] == socket.inet_aton(a.target) and f[38:42] == socket.inet_aton(a.src):
            out("reply " + fmt_mac(f[22:28]))
    out("done")


def ipv4_header(src, dst, proto, payload_len):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0x1234, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def tcp_syn(src, dst, sport, dport):
    t = struct.pack("!HHIIBBHHH", sport, dport, 0x01020304, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(t))
    return t[:16] + struct.pack("!H", csum(pseudo + t)) + t[18:]


def ipip(a):
    seg = tcp_syn(a.inner_src, a.inner_dst, a.sport, a.dport)
    inner = ipv4_header(a.inner_src, a.inner_dst, 6, len(seg)) + seg
    outer = ipv4_header(a.outer_src, a.outer_dst, 4, len(inner)) + inner
    frame = bytes.fromhex(a.dst_mac.replace(":", "")) + mac_of(a.iface) + b"\x08\x00" + outer
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    s.send(frame)
    out("sent")


FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def sniff(a):
    want = 0
    for c in a.flags:
        want |= FLAGS[c]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((a.iface, 0))
    out("ready")
    end = time.monotonic() + a.timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            out("timeout")
            return
        f, addr = s.recvfrom(4096)
        if addr[2] == socket.PACKET_OUTGOING or len(f) < 34:
            continue
        ip = f[14:]
        ihl = (ip[0] & 0xF) * 4
        if a.icmp_unreach:
            if (f[23] == 1 and ip[12:16] == socket.inet_aton(a.src)
                    and ip[16:20] == socket.inet_aton(a.dst) and ip[ihl:ihl + 1] == b"\x03"):
                out("seen")
                return
            continue
        if f[23] != 6:
            continue
        tcp = ip[ihl:]
        if len(tcp) < 14:
            continue
        sport, dport = struct.unpack("!HH", tcp[:4])
        if (ip[12:16] == socket.inet_aton(a.src) and ip[16:20] == socket.inet_aton(a.dst)
                and sport == a.sport and dport == a.dport and tcp[13] & 0x3F == want):
            out("seen")
            return


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("http", "udp", "tcp", "ping"):
        p = sub.add_parser(name)
        p.add_argument("--target", required=True)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--timeout", type=float, default=2.0)
        p.add_argument("--deadline", type=float, default=20.0)
        p.add_argument("--bind", help="source address")
    p = sub.add_parser("download")
    p.add_argument("--target", required=True)
    p.add_argument("--kib", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--deadline", type=float, default=30.0)
    p = sub.add_parser("arp")
    p.add_argument("--iface", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--timeout", type=float, default=1.0)
    p = sub.add_parser("sniff")
    for k in ("--iface", "--src", "--dst"):
        p.add_argument(k, required=True)
    p.add_argument("--flags", default="")
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--dport", type=int, default=0)
    p.add_argument("--icmp-unreach", action="store_true",
                   help="look for ICMP destination-unreachable from SRC to DST instead")
    p.add_argument("--timeout", type=float, default=5.0)
    p = sub.add_parser("ipip")
    for k in ("--iface", "--dst-mac", "--outer-src", "--outer-dst", "--inner-src", "--inner-dst"):
        p.add_argument(k, required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--dport", type=int, required=True)
    a = ap.parse_args()
    if a.cmd == "http":
        run_requests(a, one_http)
    elif a.cmd == "udp":
        run_requests(a, one_udp)
    elif a.cmd == "tcp":
        run_requests(a, one_tcp)
    elif a.cmd == "ping":
        host = a.target
        deadline = time.monotonic() + a.deadline
        for i in range(a.count):
            if time.monotonic() >= deadline:
                out("err deadline")
                continue
            try:
                out(one_ping(host, i + 1, a.timeout))
            except Exception as e:
                out(f"err {type(e).__name__}: {e}")
    elif a.cmd == "download":
        download(a)
    elif a.cmd == "arp":
        arp(a)
    elif a.cmd == "sniff":
        sniff(a)
    elif a.cmd == "ipip":
        ipip(a)


if __name__ == "__main__":
    sys.exit(main())
