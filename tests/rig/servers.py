#!/usr/bin/env python3
"""Services of a rig host: an HTTP server, a UDP echo and a TCP banner.

Each answer names the host and the client address it saw, so that a test
can tell which real server took a connection and whether the client's
address survived the trip through the load balancer:

  HTTP GET /        -> "<name> <client-ip>\n"
  HTTP GET /slow/N  -> N KiB, one KiB every 50 ms, the first line
                       "<name> <client-ip>" (a transfer that lasts)
  UDP datagram      -> "<name> <client-ip>\n"
  TCP banner        -> "<name> <client-ip>\n", then close

TCP sockets are bound to the IPv6 wildcard with IPV6_V6ONLY off, so one
server serves both families (IPv4 peers are shown without the ::ffff:
prefix); UDP binds one socket per local address so that replies leave from
the address the client sent to. Runs until killed; the rig kills it when the test ends.
"""
import argparse
import http.server
import json
import subprocess
import socket
import socketserver
import sys
import threading
import time


def peer(addr):
    host = addr[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:"):]
    return host


def dual_stack(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


class HttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def http_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            if self.path.startswith("/slow/"):
                return self.slow(int(self.path[len("/slow/"):] or 0))
            body = f"{name} {peer(self.client_address)}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def slow(self, kib):
            first = f"{name} {peer(self.client_address)}\n".encode()
            first += b"." * (1024 - len(first))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(kib * 1024))
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(kib):
                self.wfile.write(first if i == 0 else b"." * 1024)
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, fmt, *args):
            pass

    return Handler


def serve_udp(name, s):
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(f"{name} {peer(addr)}\n".encode(), addr)


def local_addresses():
    """Every address of this namespace except IPv6 link-local ones."""
    out = subprocess.run(["ip", "-j", "addr"], check=True, capture_output=True, text=True).stdout
    addrs = []
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            if a["family"] == "inet6" and a["local"].startswith("fe80"):
                continue
            addrs.append((a["family"], a["local"]))
    return addrs


def udp_per_address(port):
    """One UDP socket per local address: a reply then leaves from the address
    the request was sent to (the VIP on lo for DR/TUN), as a UDP service on a
    real server must answer, instead of whatever source routing picks."""
    socks = []
    for fam, addr in local_addresses():
        s = socket.socket(socket.AF_INET if fam == "inet" else socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        socks.append(s)
    return socks


def serve_banner(name, s):
    while True:
        conn, addr = s.accept()
        try:
            conn.sendall(f"{name} {peer(addr)}\n".encode())
        except OSError:
            pass
        finally:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--http", type=int)
    ap.add_argument("--udp", type=int)
    ap.add_argument("--banner", type=int)
    a = ap.parse_args()
    # Every socket is bound before "ready" is printed.
    threads = []
    if a.udp:
        for u in udp_per_address(a.udp):
            threads.append(threading.Thread(target=serve_udp, args=(a.name, u), daemon=True))
    if a.banner:
        b = dual_stack(socket.SOCK_STREAM, a.banner)
        b.listen(64)
        threads.append(threading.Thread(target=serve_banner, args=(a.name, b), daemon=True))
    httpd = HttpServer(("::", a.http), http_handler(a.name)) if a.http else None
    for t in threads:
        t.start()
    print("ready", flush=True)
    if httpd:
        httpd.serve_forever()
    else:
        for t in threads:
            t.join()


if __name__ == "__main__":
    sys.exit(main())
