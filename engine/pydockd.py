"""`pydockd`: the standalone daemon serving the Docker Engine API on a unix socket."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import pwd
import signal
import socket
import urllib.parse

import tornado.httpserver
import tornado.netutil
import uvloop

from engine.api import make_app
from engine.config import EngineConfig
from engine.engine import Engine
from engine.linux import overlay
from engine.rootless import cgroups, holder
from engine.rootless.paths import ROOT_PATHS, UnsafeDirectory, default_paths, ensure_private_dir, rootless
from engine.runtime import oci
from engine.store.rootlock import DataRootInUse
from pydock_common.userpaths import fallback_dir

DEFAULT_SOCKET = ROOT_PATHS.socket

log = logging.getLogger("engine.pydockd")


DEFAULT_CONFIG_FILE = ROOT_PATHS.config_file
# daemon.json keys (dockerd's names) -> argparse destinations
CONFIG_KEYS = {"data-root": "data_root", "exec-root": "exec_root", "log-level": "log_level",
               "insecure-registries": "insecure_registry", "registry-mirrors": "registry_mirror",
               "certs-dir": "certs_dir", "bip": "bip", "storage-driver": "storage_driver",
               "rootless-network": "rootless_network", "monitor": "monitor", "default-runtime": "default_runtime"}
MONITORS = ("c", "python")


def _parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The option parser; with `suppress`, only options given on the command line appear."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    paths = default_paths()
    p = argparse.ArgumentParser(prog="pydockd", description="pydock container engine daemon"
                                + (" (rootless mode: not started by root)" if rootless() else ""))
    p.add_argument("-H", "--host", default=default(f"unix://{paths.socket}"),
                   help=f"unix socket to listen on (unix:///path; default unix://{paths.socket})")
    p.add_argument("--tcp", default=default(""), metavar="ADDR:PORT",
                   help="also listen on TCP without authentication (explicit opt-in; loopback advised)")
    p.add_argument("--config-file", default=default(paths.config_file),
                   help=f"daemon.json-style configuration file (default {paths.config_file}, if present)")
    p.add_argument("--data-root", default=default(paths.data_root), help=f"default {paths.data_root}")
    p.add_argument("--exec-root", default=default(paths.exec_root),
                   help=f"default {paths.exec_root}; kept on a tmpfs, mounted there if on disk and empty")
    p.add_argument("--log-level", default=default("info"))
    p.add_argument("--insecure-registry", action="append", default=default([]), metavar="HOST[:PORT]|CIDR",
                   help="registry that may be used over plain HTTP (repeatable; loopback always may)")
    p.add_argument("--registry-mirror", action="append", default=default([]), metavar="URL",
                   help="Docker Hub mirror to pull from first (repeatable)")
    p.add_argument("--certs-dir", default=default(EngineConfig.certs_dir), metavar="DIR",
                   help="registry TLS trust: DIR/<host:port>/*.crt CAs, *.cert/*.key client certificates")
    p.add_argument("--bip", default=default(""), metavar="CIDR",
                   help="address and prefix of the default bridge network, e.g. 172.29.0.1/16")
    p.add_argument("--storage-driver", default=default(""), choices=overlay.DRIVERS,
                   help="how layers are stacked: overlay2 (the kernel's overlayfs) or fuse-overlayfs; by default "
                        "overlay2 where the kernel mounts it (rootless: in a user namespace), else fuse-overlayfs")
    p.add_argument("--rootless-network", default=default(holder.SLIRP), choices=holder.RELAYS,
                   help="rootless mode: what relays containers' outbound traffic, slirp4netns (default) or pasta")
    p.add_argument("--monitor", default=default("c"), choices=MONITORS,
                   help="per-container monitor: c (compiled on first use, the default; python when no C "
                        "compiler is found) or python")
    p.add_argument("--default-runtime", default=default(""), choices=oci.NAMES,
                   help="OCI runtime of containers created without --runtime: runc or crun; by default crun "
                        "where it is installed and can run here (faster starts), else runc")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line options, completed by the configuration file as dockerd does with daemon.json."""
    args = _parser().parse_args(argv)
    explicit = vars(_parser(suppress=True).parse_args(argv))
    if os.path.exists(args.config_file) or "config_file" in explicit:
        _apply_config_file(args, explicit)
    for mirror in args.registry_mirror:
        url = urllib.parse.urlsplit(mirror)
        if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
            raise SystemExit(f'pydockd: invalid mirror: "{mirror}" must be an http or https URL without a path')
    for action in _parser()._actions:  # argparse checks a flag's choices; daemon.json's values are checked here
        value = getattr(args, action.dest, None)
        if action.choices and value not in action.choices and value != action.default:
            raise SystemExit(f"pydockd: invalid {action.dest.replace('_', '-')} {value!r}: "
                             f"choose from {', '.join(action.choices)}")
    if not args.host.startswith("unix://"):
        raise SystemExit("pydockd: --host must be unix:///path; use --tcp for TCP")
    # absolute before a rootless daemon joins its mount namespace, which resets the working directory
    args.data_root, args.exec_root, args.certs_dir = map(os.path.abspath, (args.data_root, args.exec_root,
                                                                         args.certs_dir))
    args.host = "unix://" + os.path.abspath(args.host[len("unix://"):])
    return args


def _apply_config_file(args: argparse.Namespace, explicit: dict[str, object]) -> None:
    path = args.config_file

    def fail(reason: str) -> SystemExit:
        return SystemExit(f"pydockd: unable to configure the daemon with file {path}: {reason}")

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise fail(str(e)) from None
    if not isinstance(data, dict):
        raise fail("not a JSON object")
    unknown = sorted(k for k in data if k not in CONFIG_KEYS)
    if unknown:
        raise fail(f"the following directives don't match any configuration option: {', '.join(unknown)}")
    both = sorted(k for k in data if CONFIG_KEYS[k] in explicit)
    if both:
        raise fail(f"the following directives are specified both as a flag and in the configuration file: "
                   f"{', '.join(both)}")
    for key, value in data.items():
        if key in ("insecure-registries", "registry-mirrors"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(f"{key} must be a list of strings")
        elif not isinstance(value, str):
            raise fail(f"{key} must be a string")
        setattr(args, CONFIG_KEYS[key], value)


def listen_unix(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = tornado.netutil.bind_unix_socket(path, mode=0o660)
    return sock


def _unlink_socket(path: str, inode: int) -> None:
    """Remove the socket file (inode `inode`) this daemon listened on, as dockerd does at shutdown: a client
    then finds no engine rather than one that refuses connections. Not a file another process bound since."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def enter_rootless(args: argparse.Namespace) -> tuple[holder.Namespaces, cgroups.CgroupAccess]:
    """Make this process root in the user's namespaces (engine/rootless); returns them and the cgroups it may use.

    Runs before anything starts a thread (setns into a user namespace needs a
    single-threaded process) and before the socket is bound. A directory under
    the /tmp fallback must be the user's own, private one: another user could
    have made it first.
    """
    uid = os.getuid()
    fallback = fallback_dir(uid)
    try:
        if any(p == fallback or p.startswith(fallback + "/")
               for p in (args.exec_root, os.path.dirname(args.host[len("unix://"):]))):
            ensure_private_dir(fallback, uid)
        os.makedirs(args.exec_root, mode=0o700, exist_ok=True)
        ns = holder.enter(args.exec_root, pwd.getpwuid(uid).pw_name, args.rootless_network)
    except (UnsafeDirectory, holder.RootlessSetupError) as e:
        raise SystemExit(f"pydockd: rootless mode: {e}") from None
    for warning in ns.warnings:
        log.warning("%s", warning)
    log.info("rootless mode: joined the namespaces of holder %d", ns.holder_pid)
    return ns, cgroups.rootless_access(uid=uid)


async def serve(args: argparse.Namespace,
                rootless_mode: tuple[holder.Namespaces, cgroups.CgroupAccess] | None = None) -> None:
    os.makedirs(args.data_root, mode=0o710, exist_ok=True)
    try:
        driver = overlay.choose(args.storage_driver, args.data_root)
    except overlay.StorageError as e:
        raise SystemExit(f"pydockd: storage driver: {e}") from None
    log.info("storage driver %s", driver)
    cfg = EngineConfig(data_root=args.data_root, exec_root=args.exec_root, storage_driver=driver,
                       insecure_registries=tuple(args.insecure_registry),
                       registry_mirrors=tuple(args.registry_mirror), certs_dir=args.certs_dir, bip=args.bip,
                       monitor=args.monitor, default_runtime=args.default_runtime)
    if rootless_mode is not None:
        ns, access = rootless_mode
        cfg = dataclasses.replace(cfg, rootless=True, engine_netns=ns.engine_netns, cgroup_parent=access.parent,
                                  cgroup_controllers=access.controllers, cgroup_limits_reason=access.reason,
                                  warnings=tuple(ns.warnings))
    why = cfg.why_unusable(cfg.chosen_runtime)
    if why:
        raise SystemExit(f"pydockd: default runtime: {why}")
    try:
        engine = Engine(cfg, program="pydockd")
    except DataRootInUse as e:
        raise SystemExit(f"pydockd: {e.message}") from None
    await asyncio.get_running_loop().run_in_executor(None, engine.start)
    server = tornado.httpserver.HTTPServer(make_app(engine), max_body_size=1 << 40, idle_connection_timeout=None)
    sock_path = args.host[len("unix://"):]
    server.add_socket(listen_unix(sock_path))
    bound = os.stat(sock_path).st_ino
    if args.tcp:
        addr, _, port = args.tcp.rpartition(":")
        server.listen(int(port), address=addr or "127.0.0.1")
    log.info("pydockd listening on %s%s", args.host, f" and tcp://{args.tcp}" if args.tcp else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    _unlink_socket(sock_path, bound)
    # off the loop: closing waits for open streams, whose handlers need the loop to end
    await loop.run_in_executor(None, engine.close)  # containers keep running: their shims do not belong to us


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvloop's event loop: the loop's own work (each request's reads, writes, callbacks, handoffs from the
    # worker threads) in C took about 1.5 ms of the daemon's 21 ms of CPU per `docker run` off, and about
    # 1 ms of its latency. (In Jupyter the server's loop serves the same routes.)
    uvloop.run(serve(args, enter_rootless(args) if rootless() else None))


if __name__ == "__main__":
    main()
