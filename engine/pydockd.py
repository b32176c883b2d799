"""`pydockd`: the standalone daemon serving the Docker Engine API on a unix socket."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket

import tornado.httpserver
import tornado.netutil

from .api import make_app
from .config import EngineConfig
from .daemon import Engine

DEFAULT_SOCKET = "/run/pydock/pydock.sock"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pydockd", description="pydock container engine daemon")
    p.add_argument("-H", "--host", default=f"unix://{DEFAULT_SOCKET}",
                   help="unix socket to listen on (unix:///path)")
    p.add_argument("--tcp", default="", metavar="ADDR:PORT",
                   help="also listen on TCP without authentication (explicit opt-in; loopback advised)")
    p.add_argument("--data-root", default="/var/lib/pydock")
    p.add_argument("--exec-root", default="/run/pydock")
    p.add_argument("--log-level", default="info")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="registry that may be used over plain HTTP (repeatable; loopback always may)")
    return p.parse_args(argv)


def listen_unix(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = tornado.netutil.bind_unix_socket(path, mode=0o660)
    return sock


async def serve(args: argparse.Namespace) -> None:
    engine = Engine(EngineConfig(data_root=args.data_root, exec_root=args.exec_root,
                                 insecure_registries=tuple(args.insecure_registry)))
    await asyncio.get_running_loop().run_in_executor(None, engine.start)
    server = tornado.httpserver.HTTPServer(make_app(engine), max_body_size=1 << 40, idle_connection_timeout=None)
    if not args.host.startswith("unix://"):
        raise SystemExit("pydockd: --host must be unix:///path; use --tcp for TCP")
    server.add_socket(listen_unix(args.host[len("unix://"):]))
    if args.tcp:
        addr, _, port = args.tcp.rpartition(":")
        server.listen(int(port), address=addr or "127.0.0.1")
    logging.info("pydockd listening on %s%s", args.host, f" and tcp://{args.tcp}" if args.tcp else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    engine.close()  # containers keep running: their shims do not belong to us


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
