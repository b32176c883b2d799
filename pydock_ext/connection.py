"""How code in a kernel reaches the engine.

PYDOCK_HOST / DOCKER_HOST win, as for the CLI (a pydock-hosting Jupyter
server sets DOCKER_HOST for its kernels, see kernelenv.py). Otherwise the engine is
the one inside the Jupyter server that runs this kernel: the server is found
among the running servers by asking each (with its token) whether it owns
this kernel's id, and then the engine is `<server url>pydock` with the token
sent as an `Authorization` header, which Jupyter checks on every request.
Failing both, a pydockd listening on its default socket; never silently some
other engine: without one, the magics say so.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import docker
import requests

from pydock_cli.client import config_headers, resolve_host
from pydock_cli.session import Session
from pydock_cli.streams import Out
from pydock_common.apiversion import API_VERSION

_KERNEL_FILE = re.compile(r"kernel-(.+)\.json$")


@dataclass(frozen=True)
class Endpoint:
    host: str
    headers: dict[str, str] = field(default_factory=dict)

    def api_client(self, timeout: float | None = None) -> docker.APIClient:
        api = docker.APIClient(base_url=self.host, version=API_VERSION, timeout=timeout)
        api.headers.update(self.headers)
        return api

    @property
    def config_dir(self) -> str | None:
        """A client config dir carrying the headers as `HttpHeaders`, the way the docker CLI is given them."""
        return _config_dir(tuple(sorted(self.headers.items()))) if self.headers else None

    def cli_args(self) -> list[str]:
        """Global CLI flags selecting this endpoint."""
        return ["-H", self.host] + (["--config", self.config_dir] if self.config_dir else [])

    def session(self, stdout: Out, stderr: Out, stdin: Any) -> Session:
        """A CLI session on this endpoint, for magics that drive the CLI's commands step by step."""
        return Session(self.host, stdout, stderr, stdin, self.config_dir)


_CONFIG_DIRS: dict[tuple[tuple[str, str], ...], str] = {}


def _config_dir(headers: tuple[tuple[str, str], ...]) -> str:
    """A 0700 directory holding `config.json` with these HttpHeaders, written once per process."""
    if headers not in _CONFIG_DIRS:
        path = tempfile.mkdtemp(prefix="pydock-kernel-config-")
        atexit.register(shutil.rmtree, path, True)  # it holds a token: gone with the kernel
        fd = os.open(os.path.join(path, "config.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"HttpHeaders": dict(headers)}, f)
        _CONFIG_DIRS[headers] = path
    return _CONFIG_DIRS[headers]


def _kernel_id() -> str | None:
    try:
        from ipykernel.connect import get_connection_file
        match = _KERNEL_FILE.search(os.path.basename(get_connection_file()))
    except (ImportError, RuntimeError, AttributeError):
        return None
    return match.group(1) if match else None


def _owns_kernel(server: dict[str, Any], kernel_id: str) -> bool:
    try:
        r = requests.get(server["url"].rstrip("/") + "/api/kernels", timeout=5,
                         headers={"Authorization": f"token {server.get('token', '')}"})
    except requests.RequestException:
        return False
    return r.status_code == 200 and any(k.get("id") == kernel_id for k in r.json())


def _jupyter_endpoint() -> Endpoint | None:
    kernel_id = _kernel_id()
    if kernel_id is None:
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for server in list_running_servers():
        if _owns_kernel(server, kernel_id):
            token = server.get("token", "")
            # serverext.URL_PREFIX, below the server's own URL (which already ends with its base_url).
            return Endpoint(server["url"].rstrip("/") + "/pydock",
                            {"Authorization": f"token {token}"} if token else {})
    return None


class EngineNotFound(Exception):
    """No engine for this kernel; shown as its message alone."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def find_endpoint() -> Endpoint:
    """The explicit host if set, else this kernel's Jupyter server, else pydockd's default socket if it is there."""
    explicit = os.environ.get("PYDOCK_HOST") or os.environ.get("DOCKER_HOST")
    if explicit:
        return Endpoint(explicit, config_headers(None))
    found = _jupyter_endpoint()
    if found is not None:
        return found
    default = resolve_host(None)
    if default.startswith("unix://") and os.path.exists(default[len("unix://"):]):
        return Endpoint(default)
    raise EngineNotFound("no pydock engine for this kernel: its Jupyter server does not host pydock, DOCKER_HOST "
                         f"is not set, and no pydockd listens at {default}; set DOCKER_HOST to the engine's "
                         "address (e.g. unix:///run/pydock/pydock.sock)")
