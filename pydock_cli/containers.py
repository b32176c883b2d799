"""Container commands: run/create/start and the lifecycle, ps, logs, wait, prune."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

import requests

from pydock_cli import formatting
from pydock_cli.client import ConnectError, DaemonError, Hijacked
from pydock_cli.parser import PROG, Flag
from pydock_cli.runflags import RUN_FLAGS, ConfigError, apply
from pydock_cli.session import CliError, Session, parse_filters
from pydock_cli.streams import copy_output, default_stdin, is_terminal, stream_session, terminal_size
from pydock_cli.timespec import api_time

CONTAINER_CONFIG_FLAGS = [
    Flag("d", "detach", help="Run container in background and print container ID"),
    Flag("i", "interactive", help="Keep STDIN open even if not attached"),
    Flag("t", "tty", help="Allocate a pseudo-TTY"),
    Flag("", "rm", help="Automatically remove the container and its associated anonymous volumes when it exits"),
    Flag("", "name", "str", "", "Assign a name to the container"),
    Flag("e", "env", "list", help="Set environment variables"),
    Flag("w", "workdir", "str", "", "Working directory inside the container"),
    Flag("u", "user", "str", "", "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("", "entrypoint", "str", None, "Overwrite the default ENTRYPOINT of the image"),
    Flag("h", "hostname", "str", "", "Container host name"),
    Flag("l", "label", "list", help="Set meta data on a container"),
    Flag("", "read-only", help="Mount the container's root filesystem as read only"),
    Flag("", "restart", "str", "no", "Restart policy to apply when a container exits"),
    Flag("", "init", help="Run an init inside the container that forwards signals and reaps processes"),
    Flag("", "privileged", help="Give extended privileges to this container"),
    Flag("", "cap-add", "list", help="Add Linux capabilities"),
    Flag("", "cap-drop", "list", help="Drop Linux capabilities"),
    Flag("", "network", "str", "default", "Connect a container to a network"),
    Flag("v", "volume", "list", help="Bind mount a volume"),
    Flag("", "stop-signal", "str", "", "Signal to stop the container"),
    Flag("", "stop-timeout", "int", None, "Timeout (in seconds) to stop a container"),
    *RUN_FLAGS,
]


def _env(values: list[str]) -> list[str]:
    """`-e NAME` takes NAME's value from the client's environment, as docker does."""
    out = []
    for v in values:
        name, eq, _ = v.partition("=")
        if not eq and name in os.environ:
            v = f"{name}={os.environ[name]}"
        out.append(v)
    return out


def _restart_policy(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    if count and not count.isdigit():
        raise CliError("invalid restart policy format: maximum retry count must be an integer")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def create_body(opts: dict[str, Any], image: str, cmd: list[str]) -> dict[str, Any]:
    """The create request body the docker CLI sends for these flags."""
    attach = not opts.get("detach")
    entrypoint = opts["entrypoint"]
    config: dict[str, Any] = {
        "Hostname": opts["hostname"], "Domainname": "", "User": opts["user"],
        "AttachStdin": attach and opts["interactive"], "AttachStdout": attach, "AttachStderr": attach,
        "Tty": opts["tty"], "OpenStdin": opts["interactive"], "StdinOnce": attach and opts["interactive"],
        "Env": _env(opts["env"]), "Cmd": cmd or None, "Image": image, "Volumes": None,
        "WorkingDir": opts["workdir"], "Entrypoint": None if entrypoint is None else ([entrypoint] if entrypoint else []),
        "OnBuild": None, "Labels": dict((lbl.split("=", 1) + [""])[:2] for lbl in opts["label"]),
    }
    if opts["stop_signal"]:
        config["StopSignal"] = opts["stop_signal"]
    if opts["stop_timeout"] is not None:
        config["StopTimeout"] = opts["stop_timeout"]
    host = {
        "Binds": opts["volume"] or None, "NetworkMode": opts["network"],
        "RestartPolicy": _restart_policy(opts["restart"]), "AutoRemove": opts["rm"],
        "CapAdd": opts["cap_add"] or None, "CapDrop": opts["cap_drop"] or None,
        "Privileged": opts["privileged"], "ReadonlyRootfs": opts["read_only"], "Init": True if opts["init"] else None,
    }
    return apply({**config, "HostConfig": host}, opts)


def _familiar(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in image else image + ":latest"


def _create(s: Session, opts: dict[str, Any], args: list[str]) -> str:
    """Create, and like docker, report a missing image and try to pull it before giving up."""
    body = create_body(opts, args[0], args[1:])
    if opts["tty"] and is_terminal(s.out.stream):
        body["HostConfig"]["ConsoleSize"] = list(terminal_size(s.out.stream))
    params = {"name": opts["name"] or None}
    try:
        resp = s.client.json("POST", "/containers/create", params, body)
    except DaemonError as e:
        if e.status != 404 or "No such image" not in e.message:
            raise
        s.error(f"Unable to find image '{_familiar(args[0])}' locally")
        name, _, tag = _familiar(args[0]).rpartition(":")
        s.client.post("/images/create", {"fromImage": name, "tag": tag}).close()
        resp = s.client.json("POST", "/containers/create", params, body)
    for warning in resp.get("Warnings") or []:
        s.error(f"WARNING: {warning}")
    return resp["Id"]


def create(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    try:
        s.print(_create(s, opts, args))
    except ConfigError as e:
        raise CliError(f"{PROG}: {e}\n\nRun '{PROG} create --help' for more information", e.status) from None
    return 0


def _run_status(err: Exception) -> int:
    """docker's toStatusError: 127 for a missing command, 126 for one that cannot run."""
    text = str(err)
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def run(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    stdin = default_stdin(s.stdin)
    if opts["interactive"] and opts["tty"] and not opts["detach"] and not is_terminal(stdin):
        raise CliError("the input device is not a TTY")
    try:
        cid = _create(s, opts, args)
        if opts["detach"]:
            s.client.post(f"/containers/{cid}/start").close()
            s.print(cid)
            return 0
        return attach_start(s, cid, opts["tty"], opts["interactive"], opts["rm"], stdin)
    except (DaemonError, ConnectError, ConfigError) as e:
        s.error(f"{PROG}: {e}\n\nRun '{PROG} run --help' for more information")
        return _run_status(e)


class _Waiter:
    """`POST /wait` registered before start, so an immediate exit is not missed."""

    def __init__(self, s: Session, cid: str, removed: bool) -> None:
        condition = "removed" if removed else "next-exit"
        self._resp = s.client.post(f"/containers/{cid}/wait", {"condition": condition}, stream=True)
        self._sock = s.client.socket_of(self._resp)
        self.result: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._read, daemon=True, name="pydock-wait")
        self._thread.start()

    def _read(self) -> None:
        try:
            self.result = self._resp.json()
        except (requests.RequestException, ValueError) as e:  # a dropped connection, reported as docker does
            self.result = {"StatusCode": 125, "Error": {"Message": str(e)}}

    def status(self, s: Session) -> int:
        self._thread.join()
        error = (self.result.get("Error") or {}).get("Message")
        if error:
            s.error(f"{PROG}: Error response from daemon: {error}")
            return 125
        return int(self.result.get("StatusCode", 125))

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        self._resp.close()


def attach_start(s: Session, cid: str, tty: bool, interactive: bool, auto_remove: bool, stdin: Any,
                 start: bool = True) -> int:
    """docker's run/start -a sequence: attach, register the wait, start, stream, then report the exit code."""
    conn = s.client.hijack(f"/containers/{cid}/attach",
                           {"stream": True, "stdin": interactive, "stdout": True, "stderr": True})
    try:
        waiter = _Waiter(s, cid, auto_remove)
        try:
            if start:
                s.client.post(f"/containers/{cid}/start").close()
        except DaemonError:
            waiter.cancel()
            raise
        _stream(s, cid, conn, tty, interactive, stdin)
    finally:
        conn.close()
    return waiter.status(s)


def _stream(s: Session, cid: str, conn: Hijacked, tty: bool, interactive: bool, stdin: Any) -> None:
    stream_session(s.client, f"/containers/{cid}/resize", conn, tty, interactive, stdin, s.out, s.err)


def start(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    if opts["attach"] or opts["interactive"]:
        if len(args) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        info = s.client.json("GET", f"/containers/{args[0]}/json")
        cfg = info["Config"]
        interactive = opts["interactive"] and cfg.get("OpenStdin", False)
        return attach_start(s, info["Id"], cfg.get("Tty", False), interactive,
                            info["HostConfig"].get("AutoRemove", False), default_stdin(s.stdin))
    failed = []
    for ref in args:
        try:
            s.client.post(f"/containers/{ref}/start").close()
            s.print(ref)
        except DaemonError as e:
            s.error(str(e))
            failed.append(ref)
    if failed:
        s.error(f"Error: failed to start containers: {', '.join(failed)}")
        return 1
    return 0


def stop(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"t": opts["timeout"], "signal": opts["signal"] or None}
    return s.each(args, lambda ref: s.client.post(f"/containers/{ref}/stop", params).close())


def restart(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"t": opts["timeout"], "signal": opts["signal"] or None}
    return s.each(args, lambda ref: s.client.post(f"/containers/{ref}/restart", params).close())


def kill(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"signal": opts["signal"] or None}
    return s.each(args, lambda ref: s.client.post(f"/containers/{ref}/kill", params).close())


def pause(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    return s.each(args, lambda ref: s.client.post(f"/containers/{ref}/pause").close())


def unpause(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    return s.each(args, lambda ref: s.client.post(f"/containers/{ref}/unpause").close())


def wait(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    def one(ref: str) -> int:
        result = s.client.json("POST", f"/containers/{ref}/wait")
        if (result.get("Error") or {}).get("Message"):
            raise DaemonError(result["Error"]["Message"])
        return int(result["StatusCode"])

    return s.each(args, one)


def rm(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"force": opts["force"], "v": opts["volumes"]}
    return s.each(args, lambda ref: s.client.delete(f"/containers/{ref}", params).close())


def rename(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    old, new = args
    if not old.strip() or not new.strip():
        raise CliError("Error: Neither old nor new names may be empty")
    try:
        s.client.post(f"/containers/{old}/rename", {"name": new}).close()
    except DaemonError as e:
        raise CliError(f"{e}\nError: failed to rename container named {old}") from None
    return 0


def ps(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    last = 1 if opts["latest"] and opts["last"] == -1 else opts["last"]
    params = {"all": opts["all"], "limit": last if last > 0 else None, "size": opts["size"],
              "filters": parse_filters(opts["filter"])}
    containers = s.client.json("GET", "/containers/json", params)
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = "{{.ID}}" if opts["quiet"] else formatting.PS_TABLE + ("\t{{.Size}}" if opts["size"] else "")
    rows = [formatting.container_row(c, not opts["no_trunc"]) for c in containers]
    s.out.write(formatting.render(fmt, rows, formatting.CONTAINER_HEADERS, "*formatter.ContainerContext"))
    return 0


def logs(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    info = s.client.json("GET", f"/containers/{args[0]}/json")
    params = {"stdout": True, "stderr": True, "follow": opts["follow"], "timestamps": opts["timestamps"],
              "tail": opts["tail"], "since": api_time(opts["since"], "since"), "until": api_time(opts["until"], "until")}
    resp = s.client.get(f"/containers/{info['Id']}/logs", params, stream=True)
    try:
        copy_output(resp.raw.read1, info["Config"].get("Tty", False), s.out, s.err)
    finally:
        resp.close()
    return 0


def container_prune(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    if not opts["force"] and not s.confirm("WARNING! This will remove all stopped containers."):
        return 0
    report = s.client.json("POST", "/containers/prune", {"filters": parse_filters(opts["filter"])})
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        s.print("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted))
    s.print(f"Total reclaimed space: {formatting.human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0
