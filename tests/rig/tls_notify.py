#!/usr/bin/env python3
"""A TLS server for SSL_GET's tls_compliant: answers one HTTP request per
connection, then shuts TLS down (its own close_notify) and logs whether the
client answered with a close_notify alert ("close_notify") or just closed
the connection ("quiet ...").

Usage: tls_notify.py PORT CERT KEY
"""
import socket
import ssl
import sys
import threading


def log(msg):
    print(msg, flush=True)


def handle(ctx, conn):
    conn.settimeout(5)
    try:
        # suppress_ragged_eofs=False: a TCP close without close_notify is
        # an error, not an end of data.
        t = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        data = b""
        while b"\r\n\r\n" not in data:
            d = t.recv(4096)
            if not d:
                return
            data += d
        t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        try:
            # SSL_shutdown: our alert, then the client's.
            t.unwrap()
            log("close_notify")
        except (ssl.SSLError, OSError) as e:
            log(f"quiet {type(e).__name__}")
    except (ssl.SSLError, OSError) as e:
        log(f"error {e}")
    finally:
        conn.close()


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(16)
    log("ready")
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(ctx, conn), daemon=True).start()


main()
