#!/usr/bin/env python3
"""Real servers for the checker rig tests (tests/rig_checkers.rs).

One server per run, chosen by the first argument; each prints "ready" once
its socket is bound and logs what the checker sent on stdout, one line per
event, so that a test can assert what went over the wire:

  tls   --port P --cert C --key K --state F
        HTTPS: GET <path> -> 200 "state=<F's content>"; logs "sni <name>"
        (or "sni -") per handshake and "req <request line> host=<Host>".
  http  --port P --state F --hosts a,b
        HTTP/1.1: 200 "state=<F's content>" for a Host in the list, 404
        otherwise; logs "req <request line> host=<Host>".
  smtp  --port P --state F
        A banner "220 rig ESMTP" while F holds "up", "421 down" otherwise;
        HELO -> 250, QUIT -> 221; logs "helo <name>".
  udp   --port P [--silent]
        Echoes "ok <datagram>" (nothing with --silent) and logs
        "from <ip> <port>".

The state file is read at every request, so the test turns a server down
and up by writing it.
"""
import argparse
import socket
import ssl
import sys
import threading


def state(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "missing"


def log(line):
    print(line, flush=True)


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    lines = data.split(b"\r\n")
    host = "-"
    for l in lines[1:]:
        if l.lower().startswith(b"host:"):
            host = l[5:].strip().decode(errors="replace")
    return lines[0].decode(errors="replace"), host


def respond(conn, code, body):
    reason = {200: "OK", 404: "Not Found"}[code]
    msg = (f"HTTP/1.1 {code} {reason}\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n{body}").encode()
    conn.sendall(msg)


def listener(port, bind="::", kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((bind, port))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    return s


def serve(s, handle):
    log("ready")
    while True:
        conn, _ = s.accept()
        conn.settimeout(5)
        threading.Thread(target=guarded, args=(handle, conn), daemon=True).start()


def guarded(handle, conn):
    try:
        handle(conn)
    except (OSError, ssl.SSLError) as e:
        log(f"error {e}")
    finally:
        try:
            conn.close()
        except OSError:
            pass


def run_tls(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)

    def sni(sock, name, _ctx):
        log(f"sni {name or '-'}")

    ctx.sni_callback = sni
    s = listener(a.port)

    def handle(conn):
        with ctx.wrap_socket(conn, server_side=True) as t:
            line, host = read_head(t)
            log(f"req {line} host={host}")
            respond(t, 200, f"state={state(a.state)}\n")

    serve(s, handle)


def run_http(a):
    hosts = set(a.hosts.split(","))
    s = listener(a.port)

    def handle(conn):
        line, host = read_head(conn)
        log(f"req {line} host={host}")
        if host in hosts:
            respond(conn, 200, f"state={state(a.state)}\n")
        else:
            respond(conn, 404, "unknown host\n")

    serve(s, handle)


def run_smtp(a):
    s = listener(a.port)

    def handle(conn):
        f = conn.makefile("rb")
        if state(a.state) != "up":
            conn.sendall(b"421 down\r\n")
            return
        conn.sendall(b"220 rig ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            if cmd.upper().startswith("HELO "):
                log(f"helo {cmd[5:]}")
                conn.sendall(b"250 rig\r\n")
            elif cmd.upper() == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"500 what\r\n")

    serve(s, handle)


def run_udp(a):
    s = listener(a.port, "::", socket.SOCK_DGRAM)
    log("ready")
    while True:
        data, addr = s.recvfrom(2048)
        host = addr[0]
        if host.startswith("::ffff:"):
            host = host[7:]
        log(f"from {host} {addr[1]}")
        if not a.silent:
            try:
                s.sendto(b"ok " + data, addr)
            except OSError as e:
                log(f"error {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["tls", "http", "smtp", "udp"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--hosts", default="")
    ap.add_argument("--silent", action="store_true")
    a = ap.parse_args()
    {"tls": run_tls, "http": run_http, "smtp": run_smtp, "udp": run_udp}[a.kind](a)


if __name__ == "__main__":
    sys.exit(main())
