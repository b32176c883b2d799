"""The engine for everything a pydock-hosting Jupyter server starts: kernels, terminals, their `docker`.

Kernels and terminals inherit the server's environment, so the extension
puts `DOCKER_HOST` there, and `!docker ps`, `docker` in a Jupyter terminal,
`docker.from_env()` and testcontainers-style libraries reach the engine with
no setup. It names a unix socket, not the server's token-protected `/pydock`
URL: the socket sits in a 0700 directory of the server's runtime dir, so only
the server's user (who runs the kernels) can connect, and no token has to be
handed to clients that would send it to whatever host a user names. A server
that forwards to pydockd names pydockd's socket; one that hosts the engine
serves the same routes (and host policy) on a socket of its own.
"""
from __future__ import annotations

import os
import shutil

import tornado.httpserver
import tornado.netutil
import tornado.web

from engine.api import NotFoundHandler, make_routes
from engine.engine import Engine
from engine.hostpolicy import HostPolicy


class EngineSocket:
    """The engine's API on a private unix socket, served by the Jupyter server's IO loop."""

    def __init__(self, engine: Engine, policy: HostPolicy, directory: str) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, mode=0o700)
        self.directory = directory
        self.path = os.path.join(directory, "engine.sock")
        sock = tornado.netutil.bind_unix_socket(self.path, mode=0o600)
        app = tornado.web.Application(make_routes(engine, policy=policy), default_handler_class=NotFoundHandler)
        self.server = tornado.httpserver.HTTPServer(app)
        self.server.add_socket(sock)

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def export(host: str, proxy_url: str) -> dict[str, str]:
    """Point the environment kernels and terminals inherit at `host` (and tell them where container web apps
    are reached through this server, `proxy_url`); returns what was set."""
    env = {"DOCKER_HOST": host, "PYDOCK_PROXY_URL": proxy_url}
    os.environ.update(env)
    return env


def unexport(env: dict[str, str]) -> None:
    for key, value in env.items():
        if os.environ.get(key) == value:
            del os.environ[key]

