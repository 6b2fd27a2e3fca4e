#!/usr/bin/env python3
"""IP-in-IP decapsulation for a TUN-mode real server, in userspace.

The rig's kernel has no ipip/ip6_tunnel module, so a real server cannot
terminate LVS-TUN traffic the usual way. This helper plays the tunnel
endpoint: it receives IPIP packets addressed to this host and writes the
inner packet into a TUN device, where the kernel's stack takes it as if it
had arrived on a tunnel interface (so the reply to the client goes straight
out of the NIC with the VIP as source, as LVS-TUN wants).

Receiving through raw IP sockets of protocol 4 (IPv4 inside) and 41 (IPv6
inside) rather than through AF_PACKET matters: the kernel then delivers the
packet to a socket and does not answer "protocol unreachable" to the
director, exactly as when the ipip module consumes it. It also means only
packets addressed to one of this host's own addresses are taken, after the
kernel's reassembly and header checks. Both outer families are served.

Prints "ready" once the sockets and the TUN device exist; runs until killed.
"""
import argparse
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tun", required=True, help="TUN device to create and write into")
    a = ap.parse_args()
    tun = open_tun(a.tun)
    socks = {}
    for fam in (socket.AF_INET, socket.AF_INET6):
        for proto in (4, 41):
            s = socket.socket(fam, socket.SOCK_RAW, proto)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            socks[s.fileno()] = (s, fam)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for fd in ready:
            s, fam = socks[fd]
            data = s.recv(65535)
            if fam == socket.AF_INET:
                # IPv4 raw sockets see the outer header; IPv6 ones do not.
                if len(data) < 20:
                    continue
                data = data[(data[0] & 0xF) * 4:]
            if not data or data[0] >> 4 not in (4, 6):
                continue
            try:
                os.write(tun, data)
            except OSError as e:
                print(f"decap: write to {a.tun}: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
