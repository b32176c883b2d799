"""The error kinds, the one table that maps them to HTTP statuses, and the bodies the daemon writes."""
from __future__ import annotations

import json
from typing import Any

import pytest
from test_hostile_input import _UnixConnection

from engine import errors
from engine.api.errors import status_of
from engine.distribution.errors import AuthFailed, RegistryError
from engine.openstreams import ShuttingDown
from engine.runtime.runc import CommandNotExecutable, CommandNotFound, OCIRuntimeError, classify_runc_error
from pydock_common import errdefs

KIND_STATUS = {
    errors.NotModified: 304, errors.InvalidParameter: 400, errors.Unauthorized: 401, errors.Forbidden: 403,
    errors.NotFound: 404, errors.Conflict: 409, errors.InternalError: 500, errors.Unsupported: 501,
    errors.Unavailable: 503,
}


@pytest.mark.parametrize("kind,status", KIND_STATUS.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_kind_has_dockers_status(kind: type[errors.EngineError], status: int) -> None:
    assert status_of(kind("x")) == status


def test_kinds_know_nothing_about_http() -> None:
    """Domain code cannot read a status off an error: only engine/api/errors.py knows them."""
    kinds = [getattr(errdefs, name) for name in errdefs.__all__]
    assert set(kinds) == {errors.EngineError, *KIND_STATUS}
    assert not [k.__name__ for k in kinds if hasattr(k, "status")]


@pytest.mark.parametrize("exc,status", [
    (errors.EngineError("untagged"), 500), (RegistryError("registry said no"), 500),
    (AuthFailed("unauthorized"), 500), (ShuttingDown("closing"), 503), (ValueError("a bug"), 500),
])
def test_untagged_and_specific_errors(exc: BaseException, status: int) -> None:
    assert status_of(exc) == status


@pytest.mark.parametrize("message,kind,code,status", [
    ('exec: "nosuchcmd": executable file not found in $PATH', CommandNotFound, 127, 400),
    ('exec: "/nope": stat /nope: no such file or directory', CommandNotFound, 127, 400),
    ('exec: "/etc/passwd": permission denied', CommandNotExecutable, 126, 400),
    ("mount /x to rootfs: not a directory", CommandNotFound, 127, 400),
    ("cgroup: write /sys/fs/cgroup/cpuset.cpus: invalid argument", OCIRuntimeError, None, 500),
])
def test_runc_start_errors_tell_missing_from_not_executable(message: str, kind: type, code: int | None,
                                                            status: int) -> None:
    err = classify_runc_error(message)
    assert type(err) is kind and getattr(err, "exit_code", None) == code and status_of(err) == status
    assert err.message == f"OCI runtime create failed: {message}: unknown"


@pytest.mark.parametrize("crun_says,action,runc_says,kind", [
    ("executable file `nosuchcmd` not found in $PATH: No such file or directory", "create",
     'unable to start container process: exec: "nosuchcmd": executable file not found in $PATH', CommandNotFound),
    ("executable file `/nope` not found in $PATH: No such file or directory", "exec",
     'exec failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory',
     CommandNotFound),
    ("open executable: Permission denied", "create", "unable to start container process: exec: permission denied",
     CommandNotExecutable),
    ("open executable: Operation not permitted", "create",  # a directory
     "unable to start container process: exec: permission denied", CommandNotExecutable),
    ("open executable: Not a directory", "exec",
     "exec failed: unable to start container process: exec: not a directory", CommandNotFound),
    ("openat2 `data`: No such file or directory", "create", "openat2 `data`: No such file or directory",
     CommandNotFound),  # not a command's, but worded so: dockerd's heuristic, as for runc's
])
def test_crun_command_errors_read_as_runcs(crun_says: str, action: str, runc_says: str, kind: type) -> None:
    """The docker CLI's exit codes, scripts and the magics read runc's words."""
    err = classify_runc_error(crun_says, action)
    assert type(err) is kind and err.message == f"OCI runtime {action} failed: {runc_says}: unknown"


def _raw(daemon: Any, method: str, url: str) -> tuple[int, str, bytes]:
    conn = _UnixConnection(daemon.socket)
    try:
        conn.request(method, url)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("url,status,message", [
    ("/v9.99/version", 400, "client version 9.99 is too new. Maximum supported API version is 1.47"),
    ("/v1.12/version", 400, ("client version 1.12 is too old. Minimum supported API version is 1.24, "
                             "please upgrade your client to a newer version")),
    ("/v1.47/containers/nosuch-errors/json", 404, "No such container: nosuch-errors"),
    ("/v1.47/build?remote=https://example.com/x.git", 501,
     ("building from a remote context (git or URL) is not supported by this pydock daemon; "
      "send the context as a tar archive")),
])
def test_error_body_is_dockers(daemon: Any, url: str, status: int, message: str) -> None:
    got_status, content_type, body = _raw(daemon, "POST" if "/build" in url else "GET", url)
    assert (got_status, content_type, json.loads(body)) == (status, "application/json", {"message": message})
    assert body.endswith(b"}\n")
