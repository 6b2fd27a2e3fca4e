#!/usr/bin/env python3
"""Hostile traffic for the rig tests, sent on a raw AF_PACKET socket from
inside a rig namespace. Every run is bounded by a frame count and a
deadline, whichever comes first, and prints one summary line:

  syn  --iface IF --dst-mac MAC --dst VIP --dport P --src-net NET/LEN
       --flows N --count N --deadline S
        SYNs from N random spoofed (source address, port) pairs in NET
        (pre-built, then sent round robin as fast as the socket takes
        them); prints "sent <frames> <seconds> <pps>". With --ack, each
        SYN is followed by the ACK that would complete the handshake (a
        director that sees only the client side takes the flow as
        ESTABLISHED).
  malformed --iface IF --dst-mac MAC --dst VIP --dport P --src IP --each K
        K frames of every kind in KINDS, interleaved; prints
        "sent <kind> <K>" per kind, then "done"

Only addresses given on the command line are used; the tests pass
198.18.0.0/15 ones.
"""
import argparse
import ipaddress
import random
import socket
import struct
import sys
import time


def out(line):
    print(line, flush=True)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def mac(s):
    return bytes.fromhex(s.replace(":", ""))


def own_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return mac(f.read().strip())


def ipv4(src, dst, proto, payload, ttl=64, frag=0x4000, options=b"", ident=0x4242,
         total=None, ihl=None, bad_csum=False):
    hl = 20 + len(options)
    ihl = hl // 4 if ihl is None else ihl
    total = hl + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, frag, ttl, proto, 0,
                    src, dst) + options
    ck = csum(h)
    if bad_csum:
        ck ^= 0x5555
    return h[:10] + struct.pack("!H", ck) + h[12:] + payload


def tcp(src, dst, sport, dport, flags, doff=5, bad_csum=False, payload=b""):
    t = struct.pack("!HHIIBBHHH", sport, dport, 0x01020304, 0, doff << 4, flags, 64240, 0, 0)
    t += b"\0" * max(0, doff * 4 - 20) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(t))
    ck = csum(pseudo + t)
    if bad_csum:
        ck ^= 0x3333
    return t[:16] + struct.pack("!H", ck) + t[18:]


def sock(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def send_bounded(s, frame):
    """Sends one frame, retrying while the socket's buffer is full."""
    while True:
        try:
            s.send(frame)
            return
        except BlockingIOError:
            time.sleep(0.0005)
        except OSError as e:
            if e.errno != 105:  # ENOBUFS: the queue is full, retry
                raise
            time.sleep(0.0005)


def syn_flood(a):
    net = ipaddress.ip_network(a.src_net)
    dst = socket.inet_aton(a.dst)
    eth = mac(a.dst_mac) + own_mac(a.iface) + b"\x08\x00"
    rnd = random.Random(a.seed)
    frames = []
    for _ in range(a.flows):
        src = (net.network_address + rnd.randrange(1, net.num_addresses - 1)).packed
        sport = rnd.randrange(1024, 65536)
        seg = tcp(src, dst, sport, a.dport, 0x02)
        frames.append(eth + ipv4(src, dst, 6, seg, ident=rnd.randrange(65536)))
        if a.ack:
            seg = tcp(src, dst, sport, a.dport, 0x10)
            frames.append(eth + ipv4(src, dst, 6, seg, ident=rnd.randrange(65536)))
    s = sock(a.iface)
    start = time.monotonic()
    end = start + a.deadline
    sent = 0
    n = len(frames)
    while sent < a.count:
        batch = min(1024, a.count - sent)
        for i in range(sent, sent + batch):
            send_bounded(s, frames[i % n])
        sent += batch
        if time.monotonic() >= end:
            break
    took = time.monotonic() - start
    out(f"sent {sent} {took:.3f} {sent / took if took > 0 else 0:.0f}")


def malformed_kinds(a):
    """(kind, frame) for every kind; the kind names the drop counter the
    director should count it under, or what should happen to it."""
    src = socket.inet_aton(a.src)
    dst = socket.inet_aton(a.dst)
    eth = mac(a.dst_mac) + own_mac(a.iface) + b"\x08\x00"
    syn = lambda sport, **kw: tcp(src, dst, sport, a.dport, 0x02, **kw)
    k = {}
    k["ipv4_bad_checksum"] = eth + ipv4(src, dst, 6, syn(40001), bad_csum=True)
    # Claims 200 bytes; the frame carries 40.
    k["ipv4_bad_total_length"] = eth + ipv4(src, dst, 6, syn(40002), total=200)
    # Data offset 3 (12 bytes) in a 20-byte header.
    k["tcp_bad_data_offset"] = eth + ipv4(src, dst, 6, syn(40003, doff=3))
    # The IP packet ends 10 bytes into the TCP header; the frame is padded.
    k["tcp_truncated"] = eth + ipv4(src, dst, 6, syn(40004), total=30)
    # First fragment (MF) and a later fragment of a datagram to the VIP.
    k["fragment_first"] = eth + ipv4(src, dst, 6, syn(40005), frag=0x2000, ident=7)
    k["fragment_later"] = eth + ipv4(src, dst, 6, b"x" * 24, frag=0x0003, ident=7)
    k["ttl_exceeded"] = eth + ipv4(src, dst, 6, syn(40006), ttl=1)
    # A bare ACK of no connection.
    k["no_conn"] = eth + ipv4(src, dst, 6, tcp(src, dst, 40007, a.dport, 0x10))
    # Forwarded, not dropped: IP options (record route with two slots and
    # an end-of-options byte: IHL 8) and a bad TCP checksum (IPVS does not
    # verify it; the real server's kernel drops the segment).
    rr = bytes([7, 11, 4]) + b"\0" * 8 + b"\0"
    k["forwarded_ip_options"] = eth + ipv4(src, dst, 6, syn(40008), options=rr)
    k["forwarded_bad_tcp_checksum"] = eth + ipv4(src, dst, 6, syn(40009, bad_csum=True))
    # Too broken for the XDP program to classify: the kernel's (IHL 4,
    # runt frame, version 5).
    k["kernel_ihl_below_5"] = eth + ipv4(src, dst, 6, syn(40010), ihl=4)
    k["kernel_runt"] = eth + b"\x45\x00"
    bad_ver = bytearray(ipv4(src, dst, 6, syn(40011)))
    bad_ver[0] = 0x55
    k["kernel_bad_version"] = eth + bytes(bad_ver)
    return k


def malformed(a):
    kinds = malformed_kinds(a)
    s = sock(a.iface)
    end = time.monotonic() + a.deadline
    sent = {name: 0 for name in kinds}
    for _ in range(a.each):
        if time.monotonic() >= end:
            break
        for name, frame in kinds.items():
            send_bounded(s, frame)
            sent[name] += 1
    for name, n in sent.items():
        out(f"sent {name} {n}")
    out("done")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("syn")
    for k in ("--iface", "--dst-mac", "--dst", "--src-net"):
        p.add_argument(k, required=True)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--flows", type=int, default=65536)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--deadline", type=float, required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ack", action="store_true")
    p = sub.add_parser("malformed")
    for k in ("--iface", "--dst-mac", "--dst", "--src"):
        p.add_argument(k, required=True)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--each", type=int, required=True)
    p.add_argument("--deadline", type=float, default=20.0)
    a = ap.parse_args()
    if a.cmd == "syn":
        syn_flood(a)
    else:
        malformed(a)


if __name__ == "__main__":
    sys.exit(main())
