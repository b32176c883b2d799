"""Container web apps through Jupyter: `<base_url>/pydock/proxy/<container>/<port>/...`.

A user of a remote JupyterHub cannot reach the ports a container publishes
on the server's loopback; the Jupyter server can. This handler forwards HTTP
requests and websockets for a container's published port, behind Jupyter's
authentication (token or login cookie) like every other pydock route, the
way jupyter-server-proxy does for local processes.

The target is the host address the container's port is published on
(`-p 127.0.0.1::8080` is enough), found from the engine per request, so a
restarted container with a new host port keeps working. The app sees the
path below the port (`/...`); Jupyter's own credentials (the Authorization
header, its cookies, the token query argument) are not passed on.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import socket
import urllib.parse
from collections.abc import Callable
from inspect import isawaitable
from typing import Any

import tornado.httpclient
import tornado.websocket
from jupyter_server.base.handlers import JupyterHandler
from tornado.web import HTTPError

from engine.api.errors import status_of
from engine.api.network_json import port_map
from engine.engine import Engine
from engine.errors import EngineError

# hop-by-hop headers (RFC 9110) and Jupyter's own credentials stay on this side
_DROPPED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
            "transfer-encoding", "upgrade", "authorization", "host", "content-length"}
PortLookup = Callable[[str, int], tuple[str, int]]


def engine_lookup(engine: Engine) -> PortLookup:
    """(host address, host port) a container publishes `port`/tcp on, from the in-process engine."""
    def lookup(ref: str, port: int) -> tuple[str, int]:
        try:
            c = engine.containers.get(ref)
            ports = port_map(engine.network.networking(c))
        except EngineError as e:
            raise HTTPError(status_of(e), e.message) from e
        return _published(ports, ref, port, c.state.running)
    return lookup


def socket_lookup(path: str) -> PortLookup:
    """The same, asking the pydockd at the unix socket `path`."""
    def lookup(ref: str, port: int) -> tuple[str, int]:
        conn = http.client.HTTPConnection("pydockd", timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        conn.sock = sock
        try:
            conn.request("GET", f"/containers/{urllib.parse.quote(ref, safe='')}/json")
            resp = conn.getresponse()
            body = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status == 404:
            raise HTTPError(404, f"No such container: {ref}")
        if resp.status != 200:
            raise HTTPError(502, body.get("message", "the engine did not answer"))
        ports = (body.get("NetworkSettings") or {}).get("Ports") or {}
        return _published(ports, ref, port, bool((body.get("State") or {}).get("Running")))
    return lookup


def _published(ports: dict[str, Any], ref: str, port: int, running: bool) -> tuple[str, int]:
    if not running:
        raise HTTPError(503, f"container {ref} is not running")
    for binding in ports.get(f"{port}/tcp") or []:
        host = binding.get("HostIp") or "127.0.0.1"
        return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), int(binding["HostPort"])
    raise HTTPError(404, f"container {ref} does not publish port {port} (run it with -p 127.0.0.1::{port})")


class WebProxyHandler(tornado.websocket.WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """One handler for both: plain requests are forwarded, websocket upgrades are relayed frame by frame."""

    lookup: PortLookup

    def initialize(self, lookup: PortLookup) -> None:  # type: ignore[override]
        self.lookup = lookup
        self.upstream: tornado.websocket.WebSocketClientConnection | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if not self.current_user:
            raise HTTPError(403, "authentication required")
        action = "read" if self.request.method in ("GET", "HEAD") else "execute"
        allowed = self.authorizer.is_authorized(self, self.current_user, action, "pydock")
        if isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise HTTPError(403, f"user may not {action} pydock")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as one line of text (what is wrong with the container or port), not Jupyter's HTML page."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{message}\n")

    def check_xsrf_cookie(self) -> None:
        """The app behind decides about its own forms; Jupyter's token or cookie has been checked already."""

    async def _target(self, container: str, port: str, path: str) -> str:
        host, host_port = await asyncio.get_running_loop().run_in_executor(None, self.lookup, container, int(port))
        query = [(k, v) for k, v in urllib.parse.parse_qsl(self.request.query, keep_blank_values=True) if k != "token"]
        return f"{host}:{host_port}{path or '/'}" + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def _forwarded_headers(self) -> dict[str, str]:
        out = {k: v for k, v in self.request.headers.get_all() if k.lower() not in _DROPPED}
        cookies = [c.strip() for c in self.request.headers.get("Cookie", "").split(";") if c.strip()]
        kept = [c for c in cookies if not c.startswith(("username-", "_xsrf"))]
        out.pop("Cookie", None)
        if kept:
            out["Cookie"] = "; ".join(kept)
        return out

    async def get(self, container: str, port: str, path: str = "") -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            self._ws_target = await self._target(container, port, path)
            await tornado.websocket.WebSocketHandler.get(self, container, port, path)
            return
        await self._forward(container, port, path)

    async def _forward(self, container: str, port: str, path: str) -> None:
        target = await self._target(container, port, path)
        request = tornado.httpclient.HTTPRequest(
            f"http://{target}", method=self.request.method, headers=self._forwarded_headers(),
            body=self.request.body if self.request.method in ("POST", "PUT", "PATCH", "DELETE") else None,
            follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            request_timeout=300)
        try:
            resp = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as e:
            raise HTTPError(502, f"cannot reach {container}:{port}: {e}") from e
        if resp.code == 599:
            raise HTTPError(502, f"cannot reach {container}:{port}: {resp.error}")
        self.set_status(resp.code, resp.reason)
        self.clear_header("Content-Type")
        for name, value in resp.headers.get_all():
            if name.lower() not in _DROPPED:
                self.add_header(name, value)
        if resp.body:
            self.write(resp.body)
        self.finish()

    post = put = patch = delete = head = options = _forward  # type: ignore[assignment]

    async def open(self, container: str, port: str, path: str = "") -> None:  # type: ignore[override]
        try:
            self.upstream = await tornado.websocket.websocket_connect(
                tornado.httpclient.HTTPRequest(f"ws://{self._ws_target}", headers=self._forwarded_headers()),
                on_message_callback=self._from_app)
        except (OSError, tornado.websocket.WebSocketError) as e:
            self.close(1011, f"cannot reach {container}:{port}: {e}")

    def _from_app(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        self.write_message(message, binary=isinstance(message, bytes))

    async def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()


def proxy_route(prefix: str, lookup: PortLookup) -> tuple[str, type, dict[str, Any]]:
    return (prefix + r"/proxy/(?P<container>[^/]+)/(?P<port>[0-9]+)(?P<path>/.*)?", WebProxyHandler,
            {"lookup": lookup})
