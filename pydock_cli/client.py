"""The Engine API as the CLI uses it, over docker.APIClient's HTTP transport.

Only the transport of the SDK is used (URL building, unix-socket adapter,
hijacked sockets): request bodies are sent exactly as the docker CLI sends
them, so what the daemon sees does not depend on the SDK's own defaults.
"""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import requests

from pydock_common.apiversion import API_VERSION
from pydock_common.userpaths import user_socket

DEFAULT_HOST = "unix:///run/pydock/pydock.sock"


class DaemonError(Exception):
    """An error answer from the daemon; str() is docker's `Error response from daemon: ...`."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.message = message
        self.status = status


class ConnectError(Exception):
    pass


def resolve_host(flag: str | None) -> str:
    return flag or os.environ.get("PYDOCK_HOST") or os.environ.get("DOCKER_HOST") or default_host()


def default_host() -> str:
    """root's system daemon, or for anyone else the user's own rootless one."""
    if os.geteuid() == 0:
        return DEFAULT_HOST
    return "unix://" + user_socket(os.getuid(), os.environ)


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
    except ValueError:
        pass
    return resp.text.strip() or f"{resp.status_code} {resp.reason}"


def config_headers(config_dir: str | None) -> dict[str, str]:
    """`HttpHeaders` of the client config (`--config` or DOCKER_CONFIG), sent with every request as docker does.

    This is how an authenticating front such as Jupyter's `/pydock` gets its token.
    """
    path = os.path.join(config_dir, "config.json") if config_dir else None
    headers = docker.utils.config.load_general_config(path).get("HttpHeaders") or {}
    return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}


class Client:
    def __init__(self, host: str, config_dir: str | None = None) -> None:
        self.host = host
        self.api = docker.APIClient(base_url=host, version=API_VERSION, timeout=None)
        self.api.headers.update(config_headers(config_dir))

    def close(self) -> None:
        self.api.close()

    def _send(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
              data: Any = None, stream: bool = False, headers: dict[str, str] | None = None) -> requests.Response:
        kwargs: dict[str, Any] = {"params": _clean(params), "stream": stream, "headers": headers or {}}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"]["Content-Type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
        try:
            resp = self.api.request(method, self.api._url(path), timeout=None, **kwargs)
        except (requests.ConnectionError, docker.errors.DockerException) as e:
            raise ConnectError(f"Cannot connect to the Docker daemon at {self.host}. "
                               "Is the docker daemon running?") from e
        if resp.status_code >= 400:
            raise DaemonError(_message(resp), resp.status_code)
        return resp

    def get(self, path: str, params: dict[str, Any] | None = None, stream: bool = False) -> requests.Response:
        return self._send("GET", path, params, stream=stream)

    def post(self, path: str, params: dict[str, Any] | None = None, body: Any = None, data: Any = None,
             stream: bool = False, headers: dict[str, str] | None = None) -> requests.Response:
        return self._send("POST", path, params, body, data, stream, headers)

    def head(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        return self._send("HEAD", path, params)

    def put(self, path: str, params: dict[str, Any] | None = None, data: Any = None) -> requests.Response:
        return self._send("PUT", path, params, data=data)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        return self._send("DELETE", path, params)

    def json(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self._send(method, path, params, body).json()

    def json_lines(self, resp: requests.Response) -> Iterator[dict[str, Any]]:
        """Newline-delimited JSON streams (events, import progress)."""
        for line in resp.iter_lines():
            if line.strip():
                yield json.loads(line)

    def hijack(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Hijacked:
        """POST with `Upgrade: tcp` and return the raw connection once the daemon answers 101."""
        resp = self.post(path, params, body, stream=True, headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        return Hijacked(self.socket_of(resp), resp)

    def socket_of(self, resp: requests.Response) -> socket.socket:
        """The connection under a streamed response, e.g. to shut it down while another thread reads."""
        raw = self.api._get_raw_response_socket(resp)
        return getattr(raw, "_sock", raw)


@dataclass
class Hijacked:
    """The attach connection; holding `response` keeps urllib3 from closing the socket under us."""

    sock: socket.socket
    response: requests.Response

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.response.close()


def _clean(params: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's query encoding: bools as 1/0, absent values dropped."""
    out: dict[str, Any] = {}
    for k, v in (params or {}).items():
        if v is None:
            continue
        out[k] = (1 if v else 0) if isinstance(v, bool) else v
    return out
