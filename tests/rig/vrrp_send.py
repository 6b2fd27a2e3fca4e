#!/usr/bin/env python3
"""Sends hand-made VRRP advertisements as complete Ethernet frames.

Used by the VRRP rig tests to check that lvsfwd drops (and counts) bad
adverts: every field a receiver must check can be set, including the IPv4
TTL, which an IP socket would not let us choose freely.

    vrrp_send.py --iface IF --src IP --vip IP [--vrid N] [--prio N]
                 [--version 2|3] [--ttl N] [--auth-pass PASS] [--interval S]
                 [--count N]

Frames go to 224.0.0.18 (01:00:5e:00:00:12) from the interface's MAC.
Prints `sent N` and exits 0.
"""
import argparse
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def vrrp(args, src, dst):
    vip = socket.inet_aton(args.vip)
    if args.version == 2:
        pw = args.auth_pass.encode()[:8].ljust(8, b"\0")
        auth = 1 if args.auth_pass else 0
        head = struct.pack("!BBBBBBH", 0x21, args.vrid, args.prio, 1, auth, int(args.interval), 0)
        msg = head + vip + pw
        c = csum(msg)
    else:
        cs = int(round(args.interval * 100)) & 0x0FFF
        head = struct.pack("!BBBBHH", 0x31, args.vrid, args.prio, 1, cs, 0)
        msg = head + vip
        pseudo = src + dst + struct.pack("!BBH", 0, 112, len(msg))
        c = csum(pseudo + msg)
    return msg[:6] + struct.pack("!H", c) + msg[8:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--vrid", type=int, default=51)
    ap.add_argument("--prio", type=int, default=254)
    ap.add_argument("--version", type=int, default=2, choices=[2, 3])
    ap.add_argument("--ttl", type=int, default=255)
    ap.add_argument("--auth-pass", default="")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=1)
    args = ap.parse_args()

    src = socket.inet_aton(args.src)
    dst = socket.inet_aton("224.0.0.18")
    payload = vrrp(args, src, dst)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0,
                     args.ttl, 112, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((args.iface, 0))
    mac = s.getsockname()[4][:6]
    frame = b"\x01\x00\x5e\x00\x00\x12" + mac + b"\x08\x00" + ip + payload
    for _ in range(args.count):
        s.send(frame)
    print("sent %d" % args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
