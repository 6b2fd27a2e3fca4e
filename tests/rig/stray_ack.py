#!/usr/bin/env python3
"""Sends one TCP ACK that belongs to no connection to DST:PORT from a raw
socket and waits for the answer: prints "rst" when a RST comes back from
DST:PORT to the ACK's source port, "none" when nothing does within the
timeout (exit 0 either way; the test judges).

  stray_ack.py SRC DST PORT [TIMEOUT]

IPv4 only. The kernel fills in the IP header; the TCP header and its
checksum are built here. A raw TCP socket also receives every incoming TCP
segment, which is how the RST is seen.
"""
import random
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    sport = random.randint(40000, 60000)
    seq, ack = random.getrandbits(32), random.getrandbits(32)
    # ACK only (0x10), data offset 5 words, window 64240.
    hdr = struct.pack("!HHIIBBHHH", sport, port, seq, ack, 5 << 4, 0x10, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.bind((src, 0))
    s.sendto(hdr, (dst, 0))
    deadline = time.time() + timeout
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            pkt, addr = s.recvfrom(65535)
        except socket.timeout:
            break
        ihl = (pkt[0] & 0x0F) * 4
        tcp = pkt[ihl:]
        if len(tcp) < 20 or addr[0] != dst:
            continue
        p_sport, p_dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        if p_sport == port and p_dport == sport and flags & 0x04:
            print("rst", flush=True)
            return
    print("none", flush=True)


if __name__ == "__main__":
    main()
