#!/usr/bin/env python3
"""Tunnel decapsulation for a TUN-mode real server, in userspace.

The rig's kernel has no ipip/ip6_tunnel/gre/fou modules, so a real server
cannot terminate LVS-TUN traffic the usual way. This helper plays the
tunnel endpoint: it receives tunnelled packets addressed to this host and
writes the inner packet into a TUN device, where the kernel's stack takes
it as if it had arrived on a tunnel interface (so the reply to the client
goes straight out of the NIC with the VIP as source, as LVS-TUN wants).

Tunnels served, over either outer family (so also IPv4 in IPv6 and IPv6 in
IPv4, as IPVS builds them since Linux 3.18):
- IPIP / IPv6-in-IP: raw IP sockets of protocol 4 and 41;
- GRE (RFC 2784, as ipvs_gre_encap builds it): raw sockets of protocol 47;
  the checksum is verified when the C flag is set, the protocol type must
  be IPv4 or IPv6;
- GUE (version 0, Linux's fou, as ipvs_gue_encap builds it): UDP sockets on
  each --gue-port; the kernel verifies the UDP checksum (a zero checksum is
  allowed over IPv6, as fou allows it), proto_ctype must be 4 or 41.

Receiving through sockets rather than AF_PACKET matters: the kernel then
delivers the packet to a socket and does not answer "protocol unreachable"
(or "port unreachable") to the director, exactly as when the tunnel module
consumes it. Only packets addressed to one of this host's own addresses are
taken, after the kernel's reassembly and header checks.

Every decapsulated packet is counted per tunnel kind; the counts are
written to --stats (JSON) after each packet so a test can see which tunnel
carried the traffic. Bad packets are counted as "bad" and dropped.

Prints "ready" once the sockets and the TUN device exist; runs until killed.
"""
import argparse
import fcntl
import json
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_GRE = 47
UDP_NO_CHECK6_RX = 102
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def csum_ok(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def gre_inner(data):
    """The packet inside a GRE header, or None when it is not one we take."""
    if len(data) < 4:
        return None
    flags, proto = struct.unpack("!HH", data[:4])
    if flags & 0x0007:  # version must be 0
        return None
    if flags & ~0x8000 & 0xFFF8:  # routing, key, sequence: never sent by IPVS
        return None
    off = 4
    if flags & 0x8000:
        if len(data) < 8 or not csum_ok(data):
            return None
        off = 8
    inner = data[off:]
    want = {ETH_P_IP: 4, ETH_P_IPV6: 6}.get(proto)
    if want is None or not inner or inner[0] >> 4 != want:
        return None
    return inner


def gue_inner(data):
    """The packet inside a GUE (version 0) header, or None."""
    if len(data) < 4:
        return None
    b0, proto, _flags = data[0], data[1], struct.unpack("!H", data[2:4])[0]
    if b0 >> 6 != 0 or b0 & 0x20:  # version 0, data message
        return None
    hlen = (b0 & 0x1F) * 4
    inner = data[4 + hlen:]
    want = {4: 4, 41: 6}.get(proto)
    if want is None or not inner or inner[0] >> 4 != want:
        return None
    return inner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tun", required=True, help="TUN device to create and write into")
    ap.add_argument("--gue-port", type=int, action="append", default=[],
                    help="UDP port to take GUE on (repeatable)")
    ap.add_argument("--stats", help="file to write the per-tunnel counts to (JSON)")
    a = ap.parse_args()
    tun = open_tun(a.tun)
    socks = {}
    for fam in (socket.AF_INET, socket.AF_INET6):
        for proto, kind in ((4, "ipip"), (41, "ipip"), (IPPROTO_GRE, "gre")):
            s = socket.socket(fam, socket.SOCK_RAW, proto)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            socks[s.fileno()] = (s, fam, kind)
        for port in a.gue_port:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.IPPROTO_UDP, UDP_NO_CHECK6_RX, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
            socks[s.fileno()] = (s, fam, "gue")
    counts = {"ipip": 0, "gre": 0, "gue": 0, "bad": 0}
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for fd in ready:
            s, fam, kind = socks[fd]
            data = s.recv(65535)
            if kind != "gue" and fam == socket.AF_INET:
                # IPv4 raw sockets see the outer header; IPv6 ones do not.
                if len(data) < 20:
                    continue
                data = data[(data[0] & 0xF) * 4:]
            if kind == "gre":
                data = gre_inner(data)
            elif kind == "gue":
                data = gue_inner(data)
            elif not data or data[0] >> 4 not in (4, 6):
                data = None
            if data is None:
                counts["bad"] += 1
            else:
                counts[kind] += 1
                try:
                    os.write(tun, data)
                except OSError as e:
                    print(f"decap: write to {a.tun}: {e}", file=sys.stderr, flush=True)
            if a.stats:
                tmp = a.stats + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(counts, f)
                os.replace(tmp, a.stats)


if __name__ == "__main__":
    sys.exit(main())
