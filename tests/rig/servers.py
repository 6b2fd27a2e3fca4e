#!/usr/bin/env python3
"""Services of a rig host: an HTTP server, a UDP echo and a TCP banner.

Each answer names the host and the client address it saw, so that a test
can tell which real server took a connection and whether the client's
address survived the trip through the load balancer:

  HTTP GET /        -> "<name> <client-ip>\n"
  UDP datagram      -> "<name> <client-ip>\n"
  TCP banner        -> "<name> <client-ip>\n", then close

Every socket is bound to the IPv6 wildcard with IPV6_V6ONLY off, so one
server serves both families (IPv4 peers are shown without the ::ffff:
prefix). Runs until killed; the rig kills it when the test ends.
"""
import argparse
import http.server
import socket
import socketserver
import sys
import threading


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
            body = f"{name} {peer(self.client_address)}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    return Handler


def serve_udp(name, s):
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(f"{name} {peer(addr)}\n".encode(), addr)


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
        u = dual_stack(socket.SOCK_DGRAM, a.udp)
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
