"""Jupyter server extension: the Docker Engine API under `<base_url>/pydock/`.

The engine runs inside the Jupyter server process (a server that does not run
as root forwards to the user's rootless pydockd instead, see userdaemon.py)
and its API handlers are the very classes pydockd serves, mixed with Jupyter's authenticated API
handler, so every route requires Jupyter's token or login cookie (and its
XSRF rules) while answering exactly as Docker would.
"""
from __future__ import annotations

import asyncio
import json
import os
from inspect import isawaitable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from tornado.web import HTTPError
from traitlets import Bool, Unicode, default

from engine.api import make_routes
from engine.api.base import ApiHandler
from engine.config import EngineConfig
from engine.engine import Engine
from engine.hostpolicy import OPEN, HostPolicy, NoHostAccess
from engine.rootless.paths import default_paths, rootless
from engine.store.rootlock import DataRootInUse

from . import kernelenv, terminal, webproxy
from .enginelink import EngineLink, InProcessLink, SocketLink
from .userdaemon import DaemonStartError, ensure_user_daemon

URL_PREFIX = "/pydock"


class JupyterAuthenticated(APIHandler):
    """Jupyter's authentication in front of a Docker API handler.

    Unauthenticated requests are refused with 403 by Jupyter's APIHandler
    before any engine code runs; Docker-shaped errors and content types are
    kept for everything after that.
    """

    auth_resource = "pydock"

    async def prepare(self) -> None:  # type: ignore[override]
        # Jupyter Server 2 still defaults to allow_unauthenticated_access, so
        # refusal must be explicit here rather than left to a decorator.
        await super().prepare()
        if self._finished:
            return
        user = self.current_user
        if not user:
            raise HTTPError(403, "authentication required")
        action = "read" if self.request.method in ("GET", "HEAD") else "execute"
        allowed = self.authorizer.is_authorized(self, user, action, self.auth_resource)
        if isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise HTTPError(403, f"user {user.username!r} may not {action} {self.auth_resource}")

    def set_default_headers(self) -> None:
        super().set_default_headers()
        ApiHandler.set_default_headers(self)  # type: ignore[arg-type]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        ApiHandler.write_error(self, status_code, **kwargs)  # type: ignore[arg-type]

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)


class EngineUnavailable(JupyterAuthenticated):
    """Every API call while another engine owns the data root: 503 with the reason, as JSON."""

    def initialize(self, reason: str) -> None:  # type: ignore[override]
        self.reason = reason

    def answer(self, path: str) -> None:
        self.set_status(503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": self.reason}) + "\n")

    get = post = put = delete = head = answer  # type: ignore[assignment]


class PydockExtension(ExtensionApp):
    name = "pydock_ext"
    extension_url = URL_PREFIX + "/_ping"
    load_other_extensions = True

    data_root = Unicode(config=True, help="Where the engine keeps images and containers (default /var/lib/pydock; "
                                          "~/.local/share/pydock for a server that does not run as root).")
    exec_root = Unicode(config=True, help="Runtime state of the engine: runc, monitors (default /run/pydock; "
                                          "$XDG_RUNTIME_DIR/pydock for a server that does not run as root).")

    @default("data_root")
    def _default_data_root(self) -> str:
        return default_paths().data_root

    @default("exec_root")
    def _default_exec_root(self) -> str:
        return default_paths().exec_root

    daemon_socket = Unicode("", config=True,
                            help="Path of a running pydockd's unix socket: when set, the API is forwarded "
                                 "there instead of running an engine inside the Jupyter server. A server that "
                                 "does not run as root always forwards: to the user's rootless pydockd, "
                                 "which it starts if none answers.")

    allow_host_access = Bool(False, config=True,
                             help="Let the Docker API of this Jupyter server reach the host as Docker does: "
                                  "privileged containers, the host's namespaces (network, PID, IPC, UTS, user), "
                                  "host devices, capabilities beyond Docker's default set, bind mounts and "
                                  "volumes of host paths outside the server's root_dir, builds on the host "
                                  "network. Off by default, because any of these makes a holder of the "
                                  "Jupyter token root on the host.")

    export_docker_host = Bool(True, config=True,
                              help="Give kernels and terminals this server starts DOCKER_HOST naming its engine "
                                   "(a unix socket only this user can reach), so `docker`, `!docker` and "
                                   "docker.from_env() work there with no setup.")

    engine: Engine | None = None
    unavailable = ""  # why no engine is served, when the data root belongs to another engine
    engine_socket: kernelenv.EngineSocket | None = None
    exported: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated
    terminals: set[terminal.TerminalSession] = set()  # noqa: RUF012 - replaced per instance in initialize_handlers

    def initialize_settings(self) -> None:
        self._serve()
        if self.unavailable or not self.export_docker_host:
            return
        assert self.serverapp is not None
        if self.engine is not None:
            self.engine_socket = kernelenv.EngineSocket(
                self.engine, self.host_policy(), os.path.join(self.serverapp.runtime_dir, f"pydock-{os.getpid()}"))
            host = f"unix://{self.engine_socket.path}"
        else:
            host = f"unix://{self.daemon_socket}"
        self.exported = kernelenv.export(host, self.serverapp.base_url.rstrip("/") + URL_PREFIX + "/proxy/")
        self.log.info("pydock: kernels and terminals reach the engine at %s", host)

    def _serve(self) -> None:
        if not self.daemon_socket and rootless():
            try:
                self.daemon_socket = ensure_user_daemon(self.data_root, self.exec_root)
            except DaemonStartError as e:
                self.log.error("pydock: %s; the Docker API is not served by this Jupyter server", e)
                self.unavailable = str(e)
                return
        if self.daemon_socket:
            self.log.info("pydock: forwarding to pydockd at %s", self.daemon_socket)
            return
        try:
            engine = Engine(EngineConfig(data_root=self.data_root, exec_root=self.exec_root), program="jupyter server")
        except DataRootInUse as e:
            # the owner of the data root keeps it: this server serves no engine rather than fight over it
            self.log.error("pydock: %s; the Docker API is not served by this Jupyter server", e.message)
            self.unavailable = e.message
            return
        self.engine = engine
        self.engine.start()
        self.settings["pydock_engine"] = self.engine
        self.log.info("pydock engine started (data root %s)", self.data_root)

    def initialize_handlers(self) -> None:
        if self.unavailable:
            self.handlers.append((URL_PREFIX + r"(/.*)", EngineUnavailable, {"reason": self.unavailable}))
            return
        # the lab's container terminals and container web apps, ahead of the API routes (in proxy mode
        # those catch every path)
        link: EngineLink = InProcessLink(self.engine, self.host_policy()) if self.engine \
            else SocketLink(self.daemon_socket, self.host_policy())
        self.terminals = set()
        self.handlers.append(terminal.terminal_route(URL_PREFIX, link, self.terminals))
        lookup = webproxy.engine_lookup(self.engine) if self.engine else webproxy.socket_lookup(self.daemon_socket)
        self.handlers.append(webproxy.proxy_route(URL_PREFIX, lookup))
        if self.engine is None:
            from .proxy import proxy_routes
            self.handlers.extend(proxy_routes(self.daemon_socket, self.host_policy()))
            return
        self.handlers.extend(make_routes(self.engine, prefix=URL_PREFIX, base=JupyterAuthenticated,
                                         policy=self.host_policy()))

    def host_policy(self) -> HostPolicy:
        """Docker's behaviour with `allow_host_access`, else nothing beyond the server's root_dir."""
        if self.allow_host_access:
            return OPEN
        assert self.serverapp is not None  # handlers are initialised for a running server only
        return NoHostAccess(self.serverapp.root_dir, "this Jupyter server", "PydockExtension.allow_host_access")

    async def stop_extension(self) -> None:
        await terminal.hang_up_all(self.terminals)  # their tabs cannot reach them any more
        kernelenv.unexport(self.exported)
        if self.engine_socket is not None:
            self.engine_socket.close()
        # Containers keep running: their monitors do not belong to this process.
        # Off the loop: closing waits for open streams (logs -f, events), whose handlers need the loop to end.
        if self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.close)
