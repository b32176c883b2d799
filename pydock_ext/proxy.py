"""Proxy mode: the Jupyter server forwards `<base_url>/pydock/...` to a running pydockd.

After Jupyter has authenticated the request, the client connection is taken
over and spliced byte for byte with a fresh connection to pydockd's unix
socket. One mechanism then serves plain calls, streams (logs -f, events) and
hijacked sessions (attach, exec) alike; pydockd closes the connection after
each response, and the client reconnects as HTTP allows.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
import urllib.parse
from typing import Any

from engine.api import check_forwarded
from engine.api.errors import status_of, write_error
from engine.api.streams import splice
from engine.errors import EngineError, Unavailable
from engine.hostpolicy import HostPolicy

from .serverext import URL_PREFIX, JupyterAuthenticated

# hop-by-hop and Jupyter-only headers are not forwarded to the engine
_DROP = {"host", "content-length", "transfer-encoding", "connection", "authorization", "cookie",
         "x-xsrftoken", "keep-alive"}


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        # 503, as for any engine that is down: the client (the lab panel) shows it as unreachable and retries
        raise Unavailable(f"cannot reach pydockd at {path}: {e.strerror or e}") from None
    return sock


class ProxyHandler(JupyterAuthenticated):
    daemon_socket: str
    policy: HostPolicy

    def initialize(self, daemon_socket: str, policy: HostPolicy) -> None:  # type: ignore[override]
        self.daemon_socket = daemon_socket
        self.policy = policy

    async def forward(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, check_forwarded, self.policy, self.request.method or "", path,
                                       self.request.query, self.request.body, self._inspect)
        except EngineError as e:  # refused here, as the in-process API would: nothing reaches pydockd
            write_error(self, status_of(e), e.message)
            return
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
        # the request goes out from the splice thread: a large body must not block the IO loop
        threading.Thread(target=splice, args=(client, upstream, head + self.request.body), daemon=True,
                         name="pydock-proxy").start()

    def _inspect(self, ref: str) -> dict[str, Any]:
        """A container's inspect data from pydockd, for the host policy; `{}` if pydockd has none."""
        conn = http.client.HTTPConnection("pydockd")
        conn.sock = _connect(self.daemon_socket)
        try:
            conn.request("GET", f"/containers/{urllib.parse.quote(ref, safe='')}/json")
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return json.loads(data) if response.status == 200 else {}

    get = post = put = delete = head = forward  # type: ignore[assignment]


def proxy_routes(daemon_socket: str, policy: HostPolicy) -> list[tuple[str, type, dict[str, Any]]]:
    return [(URL_PREFIX + r"(/.*)", ProxyHandler, {"daemon_socket": daemon_socket, "policy": policy})]
