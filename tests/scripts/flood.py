#!/usr/bin/env python3
"""Opens and holds many TCP connections to a server, as an unauthenticated attacker would, and
reports what the server did with them.

    flood.py HOST PORT --count N --source IP [--slowloris K] [--hold SECONDS]

- `--count N` plain TCP connections from source address IP (loopback aliases such as 127.0.0.2
  work on Linux without configuration), opened without blocking and never written to;
- `--slowloris K` more that complete TLS and then send a request's headers one byte a second;
- waits until every connection was closed by the server or `--hold` seconds passed, then prints
  one JSON line: {"opened", "refused", "closed_by_server", "still_open", "slow_closed_after_s"}.

Raises its own open-file limit to the hard limit first; several processes can share a flood
when one's limit is too small.
"""

import argparse
import errno
import json
import resource
import select
import socket
import ssl
import threading
import time


def slowloris(host, port, source, results, stop):
    started = time.monotonic()
    try:
        raw = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        conn = ctx.wrap_socket(raw, server_hostname=host)
        conn.settimeout(1)
        request = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: gateway\r\nX-Slow: " + b"a" * 200
        for byte in request:
            if stop.is_set():
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                results.append(time.monotonic() - started)
                return
            try:
                if conn.recv(1) == b"":
                    results.append(time.monotonic() - started)
                    return
            except socket.timeout:
                pass
            except (OSError, ssl.SSLError):
                results.append(time.monotonic() - started)
                return
    except OSError:
        results.append(time.monotonic() - started)
        return
    results.append(None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--source", default="127.0.0.2")
    p.add_argument("--slowloris", type=int, default=0)
    p.add_argument("--hold", type=float, default=30)
    a = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    stop = threading.Event()
    slow_results = []
    slow_threads = [
        threading.Thread(target=slowloris, args=(a.host, a.port, a.source, slow_results, stop))
        for _ in range(a.slowloris)
    ]
    for t in slow_threads:
        t.start()

    socks = []
    refused = 0
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((a.source, 0))
            err = s.connect_ex((a.host, a.port))
        except OSError:
            s.close()
            refused += 1
            continue
        if err not in (0, errno.EINPROGRESS):
            s.close()
            refused += 1
            continue
        socks.append(s)
    print(json.dumps({"phase": "opened", "opened": len(socks)}), flush=True)

    # A connection is closed by the server when it becomes readable with EOF or a reset.
    open_socks = set(socks)
    closed = 0
    deadline = time.monotonic() + a.hold
    poller = select.epoll()
    fds = {}
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLERR | select.EPOLLHUP)
        fds[s.fileno()] = s
    while open_socks and time.monotonic() < deadline:
        for fd, ev in poller.poll(0.2):
            s = fds.get(fd)
            if s is None or s not in open_socks:
                continue
            try:
                data = s.recv(1)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data == b"":
                open_socks.discard(s)
                poller.unregister(fd)
                closed += 1
    stop.set()
    for t in slow_threads:
        t.join()
    print(
        json.dumps(
            {
                "phase": "done",
                "opened": len(socks),
                "refused": refused,
                "closed_by_server": closed,
                "still_open": len(open_socks),
                "slow_closed_after_s": slow_results,
            }
        ),
        flush=True,
    )
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
