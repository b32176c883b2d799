"""Proxy mode: the Jupyter server forwards `<base_url>/pydock/...` to a running pydockd.

After Jupyter has authenticated the request, the client connection is taken
over and spliced byte for byte with a fresh connection to pydockd's unix
socket. One mechanism then serves plain calls, streams (logs -f, events) and
hijacked sessions (attach, exec) alike; pydockd closes the connection after
each response, and the client reconnects as HTTP allows.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

from engine.errors import EngineError

from .serverext import URL_PREFIX, JupyterAuthenticated

# hop-by-hop and Jupyter-only headers are not forwarded to the engine
_DROP = {"host", "content-length", "transfer-encoding", "connection", "authorization", "cookie",
         "x-xsrftoken", "keep-alive"}


def _splice(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise EngineError(f"cannot reach pydockd at {path}: {e.strerror or e}") from None
    return sock


class ProxyHandler(JupyterAuthenticated):
    daemon_socket: str

    def initialize(self, daemon_socket: str) -> None:  # type: ignore[override]
        self.daemon_socket = daemon_socket

    async def forward(self, path: str) -> None:
        upstream = await asyncio.get_running_loop().run_in_executor(None, _connect, self.daemon_socket)
        query = self.request.query
        lines = [f"{self.request.method} {path}{'?' + query if query else ''} HTTP/1.1", "Host: pydockd"]
        lines += [f"{k}: {v}" for k, v in self.request.headers.get_all() if k.lower() not in _DROP]
        upgrade = "upgrade" in self.request.headers.get("Connection", "").lower()
        lines += [f"Content-Length: {len(self.request.body)}", "Connection: " + ("Upgrade" if upgrade else "close")]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self._auto_finish = False
        stream = self.request.connection.detach()  # type: ignore[union-attr]
        client = socket.socket(fileno=os.dup(stream.socket.fileno()))
        stream.close()
        client.setblocking(True)
        upstream.sendall(head + self.request.body)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True, name="pydock-proxy").start()

    @staticmethod
    def _pump(client: socket.socket, upstream: socket.socket) -> None:
        inbound = threading.Thread(target=_splice, args=(client, upstream), daemon=True)
        inbound.start()
        _splice(upstream, client)  # the engine's answer ends when it closes the connection
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        inbound.join(timeout=5)
        client.close()
        upstream.close()

    get = post = put = delete = head = forward  # type: ignore[assignment]


def proxy_routes(daemon_socket: str) -> list[tuple[str, type, dict[str, Any]]]:
    return [(URL_PREFIX + r"(/.*)", ProxyHandler, {"daemon_socket": daemon_socket})]
