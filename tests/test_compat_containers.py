"""Container behaviours real projects rely on (issue 13), through the real docker CLI."""
from __future__ import annotations

import json
import subprocess
import time
import uuid


def name() -> str:
    return "c" + uuid.uuid4().hex[:10]


def inspect(daemon, ref: str) -> dict:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]


def test_kill_returns_after_the_exit_is_recorded(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "100", check=True)
    daemon.docker("kill", n, check=True)
    state = inspect(daemon, n)["State"]  # no wait in between, as dockerd guarantees
    assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)
    daemon.docker("rm", n, check=True)


def test_a_restarting_container_is_removed_only_with_force(daemon, busybox):
    n = name()
    daemon.docker("run", "-d", "--name", n, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 1",
                  check=True)
    deadline = time.time() + 20
    while not inspect(daemon, n)["State"]["Restarting"]:
        assert time.time() < deadline, "never seen restarting"
        time.sleep(0.02)
    out = daemon.docker("rm", n)
    if out.returncode != 0:  # it may have started again meanwhile: then it is running, also refused
        assert "stop the container before removing or force remove" in out.stderr, out.stderr
    daemon.docker("rm", "-f", n, check=True)


def test_env_entries_without_a_value_are_kept_and_unset(daemon, busybox):
    n = name()
    env = {**daemon.env}
    env.pop("UNSET_ME", None)
    daemon.docker("create", "--name", n, "-e", "A=1", "-e", "UNSET_ME", "busybox", "env", check=True)
    config_env = inspect(daemon, n)["Config"]["Env"]
    # the request's first, as dockerd merges them (docker CLI 28 sends its -e entries in map order)
    assert sorted(config_env[:2]) == ["A=1", "UNSET_ME"]
    daemon.docker("start", "-a", n, check=True)
    out = daemon.docker("logs", n, check=True).stdout
    assert "A=1" in out and "UNSET_ME" not in out
    daemon.docker("rm", n, check=True)


def test_runtime_is_recorded_and_unknown_ones_refused(daemon, busybox):
    n = name()
    daemon.docker("create", "--name", n, "busybox", "true", check=True)
    default = json.loads(daemon.docker("info", "--format", "{{json .DefaultRuntime}}", check=True).stdout)
    assert inspect(daemon, n)["HostConfig"]["Runtime"] == default
    out = daemon.docker("create", "--runtime", "nosuch", "busybox", "true")
    assert out.returncode != 0 and "Unknown runtime specified nosuch" in out.stderr
    daemon.docker("rm", n, check=True)


def _cp_round_trip(daemon, container: str, path: str, tmp_path, tag: str) -> None:
    src = tmp_path / f"in-{tag}"
    src.write_text(f"through {tag}\n")
    daemon.docker("cp", str(src), f"{container}:{path}/f-{tag}", check=True)
    out = tmp_path / f"out-{tag}"
    daemon.docker("cp", f"{container}:{path}/f-{tag}", str(out), check=True)
    assert out.read_text() == f"through {tag}\n"


def test_cp_reaches_volumes_binds_and_tmpfs(daemon, busybox, tmp_path):
    n, vol = name(), name()
    bind_dir = tmp_path / "bind"
    bind_dir.mkdir()
    daemon.docker("run", "-d", "--name", n, "-v", f"{vol}:/vol", "-v", f"{bind_dir}:/bind",
                  "--tmpfs", "/scratch", "busybox", "sleep", "100", check=True)
    for path in ("/vol", "/bind", "/scratch"):
        _cp_round_trip(daemon, n, path, tmp_path, "running" + path.replace("/", "-"))
    # what went in is where the container sees it
    assert daemon.docker("exec", n, "cat", "/vol/f-running-vol", "/scratch/f-running-scratch",
                         check=True).stdout == "through running-vol\nthrough running-scratch\n"
    assert (bind_dir / "f-running-bind").read_text() == "through running-bind\n"
    daemon.docker("stop", "-t", "0", n, check=True)
    for path in ("/vol", "/bind"):  # stopped: its volumes and binds are mounted in for the copy
        _cp_round_trip(daemon, n, path, tmp_path, "stopped" + path.replace("/", "-"))
    assert (bind_dir / "f-stopped-bind").exists()
    daemon.docker("rm", n, check=True)
    check = daemon.docker("run", "--rm", "-v", f"{vol}:/vol", "busybox", "cat", "/vol/f-stopped-vol", check=True)
    assert check.stdout == "through stopped-vol\n"
    daemon.docker("volume", "rm", vol, check=True)


def test_commit_of_an_exiting_container_never_fails_with_runcs_text(daemon, busybox, client):
    """Commits (with pause) racing the container's exit: each one succeeds, or is dockerd's 409."""
    import docker.errors
    n = name()
    container = client.containers.run("busybox", ["sh", "-c", "echo x > /f; sleep 0.5"], name=n, detach=True)
    images = []
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            images.append(container.commit().id)
        except docker.errors.APIError as e:
            assert e.status_code == 409, e
        if container.reload() or container.status == "exited":
            break
    assert images
    for image in images:
        client.images.remove(image)
    container.remove()


def _attach_raw(daemon, ref: str, query: str):  # type: ignore[no-untyped-def]
    """A hijacked attach on the daemon's socket, as the docker CLI opens one; returns the socket after the headers."""
    import socket as _socket
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.connect(daemon.url[len("unix://"):])
    sock.sendall(f"POST /containers/{ref}/attach?{query} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                 "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.settimeout(10)
    return sock


def _read_until(sock, needle: bytes) -> bytes:  # type: ignore[no-untyped-def]
    seen = b""
    while needle not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    return seen


def test_detach_keys_end_an_attach_and_the_container_runs_on(daemon, busybox):
    n = name()
    daemon.docker("run", "-dit", "--name", n, "busybox", "cat", check=True)
    try:
        sock = _attach_raw(daemon, n, "stream=1&stdin=1&stdout=1&stderr=1")
        sock.sendall(b"first-\x10-kept\n")  # a lone ctrl-p that does not complete the sequence passes on
        _read_until(sock, b"first-\x10-kept")  # cat wrote the byte back (the terminal's echo shows it as ^P)
        sock.sendall(b"\x10\x11")
        rest = b""
        while chunk := sock.recv(4096):
            rest += chunk
        sock.close()
        assert inspect(daemon, n)["State"]["Running"]  # detached, not stopped
        sock = _attach_raw(daemon, n, "stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,x")
        sock.sendall(b"second\n")
        _read_until(sock, b"second\r\nsecond")
        sock.sendall(b"\x01x")
        while sock.recv(4096):
            pass
        sock.close()
        assert inspect(daemon, n)["State"]["Running"]
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                              daemon.url[len("unix://"):], "-X", "POST",
                              f"http://d/containers/{n}/attach?stream=1&stdin=1&detachKeys=ctrl-nope"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.stdout == "400"
    finally:
        daemon.docker("rm", "-f", n)


def test_exec_start_tty_decides_the_stream_format(client):
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        api = client.api
        framed = api.exec_create(c.id, ["echo", "from a tty exec"], tty=True)["Id"]
        assert api.exec_start(framed, tty=False) == b"from a tty exec\r\n"  # docker-py demuxes the frames
        raw = api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2"], tty=False)["Id"]
        assert sorted(api.exec_start(raw, tty=True).split()) == [b"err", b"out"]  # one raw stream
    finally:
        c.remove(force=True)


def test_volume_subpath_mounts_a_part_of_a_volume_and_nothing_outside_it(daemon, busybox):
    vol = name()
    daemon.docker("run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c",
                  "mkdir -p /v/sub && echo in-sub > /v/sub/f && ln -s / /v/evil && echo top > /v/top", check=True)
    try:
        out = daemon.docker("run", "--rm", "--mount", f"type=volume,src={vol},dst=/x,volume-subpath=sub",
                            "busybox", "sh", "-c", "ls /x; cat /x/f; echo written > /x/g", check=True)
        assert out.stdout == "f\nin-sub\n"
        check = daemon.docker("run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/sub/g", check=True)
        assert check.stdout == "written\n"  # writes land in the volume's subdirectory
        evil = daemon.docker("run", "--rm", "--mount", f"type=volume,src={vol},dst=/x,volume-subpath=evil",
                             "busybox", "ls", "/x")
        assert evil.returncode != 0 and "symbolic link" in evil.stderr
        bad = daemon.docker("create", "--mount", f"type=volume,src={vol},dst=/x,volume-subpath=../up", "busybox")
        assert bad.returncode != 0 and "subpath must be a relative path within the volume" in bad.stderr
        with open("/proc/self/mountinfo") as f:
            assert "/subpaths/" not in f.read()  # the staged mounts went with the containers
    finally:
        daemon.docker("volume", "rm", "-f", vol)
