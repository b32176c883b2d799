"""A container's published ports in rootless mode: host-side listeners relayed into the engine's network namespace.

A rootless daemon cannot DNAT from the host's network namespace, which root
owns. So, like rootlesskit's builtin port driver and Docker's userland proxy,
published ports are relayed in user space: the daemon binds each listening
socket in the host's namespace (where the user may bind ports >= 1024) and
hands them to this process, one per container, started in its own session so
that it keeps serving while the daemon restarts (as a container's monitor
does). Each worker thread first enters the engine's network namespace, where
the bridges are: sockets it creates then reach the container's address,
while the inherited listeners stay in the host's.

Run as `python3 -I -S portproxy.py pydock-ports CONTAINER_ID`, the listeners
as inherited descriptors, and on stdin one JSON object:
{"netns": path, "ports": [{"fd": n, "proto": "tcp"|"udp", "ip": a, "port": p}]};
it answers "ready" once it holds them. Stdlib only: it lives as long as the
container. SIGTERM ends it.
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import socket
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0
UDP_IDLE = 60.0  # seconds a UDP client's upstream socket lives without traffic
BUFFER = 64 * 1024


def enter_netns(fd: int) -> None:
    """Move the calling thread into the engine's network namespace (threads have their own)."""
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns into the engine's network namespace")


def relay_tcp(client: socket.socket, target: tuple[str, int], netns_fd: int) -> None:
    """One connection: dial the container from the engine's namespace, then copy both ways until both close."""
    with client:
        try:
            enter_netns(netns_fd)
            upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
        except OSError:
            return  # the client sees its connection closed, as with a refused DNAT
        with upstream:
            upstream.settimeout(None)
            pipe(client, upstream)


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes between two sockets, passing each half-close on, until both directions ended."""
    peer = {a: b, b: a}
    open_ = {a, b}
    sel = selectors.DefaultSelector()
    for s in open_:
        sel.register(s, selectors.EVENT_READ)
    try:
        while open_:
            for key, _ in sel.select():
                src = key.fileobj
                assert isinstance(src, socket.socket)
                try:
                    data = src.recv(BUFFER)
                except OSError:
                    data = b""
                if data:
                    try:
                        peer[src].sendall(data)
                        continue
                    except OSError:
                        return
                sel.unregister(src)
                open_.discard(src)
                try:
                    peer[src].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()


def serve_tcp(listener: socket.socket, target: tuple[str, int], netns_fd: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            time.sleep(0.1)  # e.g. out of descriptors: keep serving
            continue
        threading.Thread(target=relay_tcp, args=(client, target, netns_fd), daemon=True).start()


def serve_udp(listener: socket.socket, target: tuple[str, int], netns_fd: int) -> None:
    """Datagrams from each client go out of an upstream socket of its own, so replies find their way back."""
    enter_netns(netns_fd)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    upstream: dict[tuple[str, int], socket.socket] = {}
    client_of: dict[socket.socket, tuple[str, int]] = {}
    last: dict[socket.socket, float] = {}
    while True:
        for key, _ in sel.select(timeout=UDP_IDLE / 4):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data, addr = sock.recvfrom(BUFFER)
            except OSError:
                continue
            if sock is listener:
                up = upstream.get(addr)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.connect(target)
                    upstream[addr], client_of[up] = up, addr
                    sel.register(up, selectors.EVENT_READ)
                last[up] = time.monotonic()
                try:
                    up.send(data)
                except OSError:
                    pass
            else:
                last[sock] = time.monotonic()
                try:
                    listener.sendto(data, client_of[sock])
                except OSError:
                    pass
        for up, seen in list(last.items()):
            if time.monotonic() - seen > UDP_IDLE:
                sel.unregister(up)
                del upstream[client_of.pop(up)], last[up]
                up.close()


def main() -> int:
    cfg = json.loads(sys.stdin.readline())
    netns_fd = os.open(cfg["netns"], os.O_RDONLY | os.O_CLOEXEC)
    workers = []
    for port in cfg["ports"]:
        kind = socket.SOCK_STREAM if port["proto"] == "tcp" else socket.SOCK_DGRAM
        listener = socket.socket(socket.AF_INET, kind, fileno=port["fd"])
        serve = serve_tcp if port["proto"] == "tcp" else serve_udp
        workers.append(threading.Thread(target=serve, args=(listener, (port["ip"], port["port"]), netns_fd),
                                        daemon=True))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for fd in (0, 1, 2):  # the daemon's pipes are not ours to keep
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    for worker in workers:
        worker.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
