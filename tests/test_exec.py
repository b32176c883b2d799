"""docker exec, attach and stats streaming, through the real docker CLI and SDK."""
from __future__ import annotations

import json
import os
import subprocess
import time

import docker
import pytest
from conftest import DOCKER, Daemon, new_name


def running(daemon: Daemon, names: list[str], *args: str) -> str:
    """A detached busybox container that idles (or runs `args`); returns its name."""
    name = new_name(names, "ex-")
    daemon.docker("run", "-d", "--name", name, "busybox", *(args or ("sleep", "300")), check=True)
    return name


def api(daemon: Daemon, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A raw Engine API call, to see status codes and JSON shapes the CLI hides."""
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", daemon.socket,
                          "-X", method, "-H", "Content-Type: application/json", "-d", json.dumps(body or {}),
                          f"http://d/v1.47{path}"], capture_output=True, text=True, timeout=30, check=False)
    text, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(text) if text.strip() else {}


def wait_for(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


# ---- docker exec ---------------------------------------------------------------
def test_exec_output_and_exit_code(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    out = daemon.docker("exec", c, "echo", "hi")
    assert (out.returncode, out.stdout, out.stderr) == (0, "hi\n", "")
    out = daemon.docker("exec", c, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (out.returncode, out.stdout, out.stderr) == (7, "out\n", "err\n")


def test_exec_env_workdir_user(daemon: Daemon, busybox: str, names: list[str]) -> None:
    name = new_name(names, "ex-")
    daemon.docker("run", "-d", "--name", name, "-e", "KEEP=1", "-e", "OVER=old", "busybox", "sleep", "300",
                  check=True)
    out = daemon.docker("exec", "-e", "OVER=new", "-e", "ADD=x", "-w", "/tmp", "-u", "user", name,
                        "sh", "-c", "echo $KEEP $OVER $ADD $(pwd) $(id -u):$(id -g) $HOSTNAME", check=True)
    cid = daemon.docker("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    assert out.stdout.split() == ["1", "new", "x", "/tmp", "1000:1000", cid[:12]]
    assert daemon.docker("exec", name, "id", "-u").stdout == "0\n"  # the container's user by default


def test_exec_unknown_user_fails_at_create(daemon: Daemon, busybox: str, names: list[str]) -> None:
    out = daemon.docker("exec", "-u", "nosuchuser", running(daemon, names), "id")
    assert out.returncode == 1
    assert "unable to find user nosuchuser: no matching entries in passwd file" in out.stderr


def test_exec_stdin_piped(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    out = daemon.docker("exec", "-i", c, "sh", "-c", "cat; echo done", input="line1\nline2\n", timeout=30)
    assert (out.returncode, out.stdout) == (0, "line1\nline2\ndone\n")


def test_exec_tty_interactive(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    proc = subprocess.run(["script", "-qec", f"docker exec -it {c} sh", "/dev/null"],
                          input="echo tty-$((40+2)); tty; echo $TERM\nexit 5\n",
                          capture_output=True, text=True, timeout=60, env=daemon.env, check=False)
    assert "tty-42" in proc.stdout and "/dev/pts/" in proc.stdout and "xterm" in proc.stdout
    assert proc.returncode == 5


def test_exec_detached_then_inspect(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    cid = daemon.docker("inspect", "-f", "{{.Id}}", c, check=True).stdout.strip()
    code, created = api(daemon, "POST", f"/containers/{c}/exec", {"Cmd": ["sh", "-c", "sleep 1; exit 3"]})
    assert code == 201 and len(created["Id"]) == 64
    eid = created["Id"]
    code, info = api(daemon, "GET", f"/exec/{eid}/json")
    assert code == 200
    assert info == {"ID": eid, "Running": False, "ExitCode": None,
                    "ProcessConfig": {"tty": False, "entrypoint": "sh", "arguments": ["-c", "sleep 1; exit 3"],
                                      "privileged": False},
                    "OpenStdin": False, "OpenStderr": False, "OpenStdout": False, "CanRemove": False,
                    "ContainerID": cid, "DetachKeys": "", "Pid": 0}
    assert api(daemon, "POST", f"/exec/{eid}/start", {"Detach": True})[0] == 200
    info = api(daemon, "GET", f"/exec/{eid}/json")[1]
    assert info["Running"] is True and info["Pid"] > 0 and info["ExitCode"] is None
    assert json.loads(daemon.docker("inspect", "-f", "{{json .ExecIDs}}", c).stdout) == [eid]
    code, err = api(daemon, "POST", f"/exec/{eid}/start", {"Detach": True})
    assert (code, err["message"]) == (409, f"Error: Exec command {eid} is already running")
    wait_for(lambda: api(daemon, "GET", f"/exec/{eid}/json")[1]["ExitCode"] == 3)
    assert daemon.docker("inspect", "-f", "{{json .ExecIDs}}", c).stdout.strip() == "null"
    code, err = api(daemon, "POST", f"/exec/{eid}/start", {"Detach": True})
    assert (code, err["message"]) == (409, f"Error: Exec command {eid} has already run")
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", c).stdout.strip() == "true"


def test_exec_cli_detached(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    out = daemon.docker("exec", "-d", c, "sh", "-c", "echo ran > /tmp/mark")
    assert (out.returncode, out.stdout) == (0, "")
    wait_for(lambda: daemon.docker("exec", c, "cat", "/tmp/mark").stdout == "ran\n")


def test_exec_missing_binary(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    out = daemon.docker("exec", c, "nosuchcmd")
    assert out.returncode == 127
    assert out.stdout == ('OCI runtime exec failed: exec failed: unable to start container process: '
                          'exec: "nosuchcmd": executable file not found in $PATH: unknown\n')  # \r\n, text mode
    out = daemon.docker("exec", c, "/etc")
    assert out.returncode == 126 and "permission denied" in out.stdout
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", c).stdout.strip() == "true"


def test_exec_not_running_or_paused(daemon: Daemon, busybox: str, names: list[str]) -> None:
    stopped = new_name(names, "ex-")
    daemon.docker("create", "--name", stopped, "busybox", "true", check=True)
    cid = daemon.docker("inspect", "-f", "{{.Id}}", stopped, check=True).stdout.strip()
    out = daemon.docker("exec", stopped, "echo", "hi")
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error response from daemon: container {cid} is not running"
    paused = running(daemon, names)
    daemon.docker("pause", paused, check=True)
    out = daemon.docker("exec", paused, "echo", "hi")
    assert out.returncode == 1
    assert out.stderr.strip() == (f"Error response from daemon: Container {paused} is paused, "
                                  "unpause the container before exec")
    daemon.docker("unpause", paused, check=True)
    assert daemon.docker("exec", paused, "echo", "hi").stdout == "hi\n"


def test_exec_api_errors(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    assert api(daemon, "POST", f"/containers/{c}/exec", {}) == (400, {"message": "No exec command specified"})
    assert api(daemon, "GET", "/exec/nope/json") == (404, {"message": "No such exec instance: nope"})
    assert api(daemon, "POST", "/exec/nope/start", {"Detach": True}) == \
        (404, {"message": "No such exec instance: nope"})
    code, created = api(daemon, "POST", f"/containers/{c}/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-p,ctrl-q"})
    assert code == 201
    assert api(daemon, "GET", f"/exec/{created['Id']}/json")[1]["DetachKeys"] == "EBE="  # []byte{16, 17}
    code, err = api(daemon, "POST", f"/containers/{c}/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-pp"})
    assert (code, err["message"]) == (500, "Invalid escape keys (ctrl-pp) provided")


def test_exec_privileged_caps_and_events(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    since = str(time.time() - 1)

    def cap_eff(*flags: str) -> int:
        out = daemon.docker("exec", *flags, c, "grep", "CapEff", "/proc/self/status", check=True).stdout
        return int(out.split()[1], 16)

    assert cap_eff("--privileged") > cap_eff()
    events = daemon.docker("events", "--since", since, "--until", str(time.time() + 0.1), "--filter",
                           f"container={c}", "--format", "{{json .}}", check=True).stdout.splitlines()
    actions = [json.loads(e)["Action"] for e in events]
    assert actions.count("exec_create: grep CapEff /proc/self/status") == 2
    assert actions.count("exec_start: grep CapEff /proc/self/status") == 2
    dies = [json.loads(e)["Actor"]["Attributes"] for e in events if json.loads(e)["Action"] == "exec_die"]
    assert len(dies) == 2 and all(d["exitCode"] == "0" and len(d["execID"]) == 64 for d in dies)


def test_exec_output_not_logged(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names, "sh", "-c", "echo from-init; sleep 300")
    daemon.docker("exec", c, "echo", "from-exec", check=True)
    assert daemon.docker("logs", c).stdout == "from-init\n"


def test_sdk_exec_run(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    ct = client.containers.run("busybox", ["sleep", "300"], detach=True, name=new_name(names, "ex-"))
    res = ct.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert res.exit_code == 4 and res.output == b"out\nerr\n"
    res = ct.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert res.exit_code == 0 and res.output == (b"out\n", b"err\n")
    res = ct.exec_run(["sh", "-c", "echo a; sleep 0.5; echo b"], stream=True)
    assert list(res.output) == [b"a\n", b"b\n"]
    res = ct.exec_run("cat /etc/hostname", tty=True, environment={"X": "1"})
    assert res.exit_code == 0 and res.output == ct.id[:12].encode() + b"\r\n"


def test_exec_survives_daemon_restart(daemon: Daemon, busybox: str, names: list[str]) -> None:
    """The exec process outlives the daemon (its shim holds it); like Docker, the restarted
    daemon has forgotten the exec instance, so its inspect answers 404."""
    c = running(daemon, names)
    created = api(daemon, "POST", f"/containers/{c}/exec", {"Cmd": ["sleep", "3"]})[1]
    eid = created["Id"]
    api(daemon, "POST", f"/exec/{eid}/start", {"Detach": True})
    pid = api(daemon, "GET", f"/exec/{eid}/json")[1]["Pid"]
    shims = os.path.join(daemon.exec_root, "s")  # monitors' state directories
    assert eid[:16] in os.listdir(shims)
    daemon.stop()
    os.kill(pid, 0)  # still running without the daemon
    daemon.start()
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", c).stdout.strip() == "true"
    assert "sleep 3" in daemon.docker("top", c, check=True).stdout
    assert api(daemon, "GET", f"/exec/{eid}/json") == (404, {"message": f"No such exec instance: {eid}"})
    wait_for(lambda: eid[:16] not in os.listdir(shims), timeout=10)  # its monitor cleans up after itself
    assert daemon.docker("exec", c, "echo", "after").stdout == "after\n"


def test_exec_dies_with_container(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    created = api(daemon, "POST", f"/containers/{c}/exec", {"Cmd": ["sleep", "300"]})[1]
    eid = created["Id"]
    api(daemon, "POST", f"/exec/{eid}/start", {"Detach": True})
    daemon.docker("kill", c, check=True)
    wait_for(lambda: api(daemon, "GET", f"/exec/{eid}/json")[1]["ExitCode"] == 137)


# ---- docker attach --------------------------------------------------------------
def test_attach_detached_container_streams_until_exit(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names, "sh", "-c", "sleep 1; echo hello; echo oops >&2; exit 3")
    out = daemon.docker("attach", c, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (3, "hello\n", "oops\n")


def test_attach_tty_detach_keys_leave_container_running(daemon: Daemon, busybox: str,
                                                        names: list[str]) -> None:
    name = new_name(names, "ex-")
    daemon.docker("run", "-dit", "--name", name, "busybox", "sh", check=True)
    keys = "printf 'echo in-$((6*7))\\n'; sleep 1; printf '\\020\\021'; sleep 1"  # ctrl-p ctrl-q
    script = f"({keys}) | script -qec '{DOCKER} attach {name}' /dev/null"
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, env=daemon.env,
                          check=False)
    assert "in-42" in proc.stdout and "read escape sequence" in proc.stdout
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    assert daemon.docker("exec", name, "echo", "alive").stdout == "alive\n"


def test_sdk_attach_logs_replay(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    ct = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; sleep 1; echo three"],
                               detach=True, name=new_name(names, "ex-"))
    time.sleep(0.5)
    assert ct.attach(logs=True, stream=False) == b"one\ntwo\n"
    assert ct.attach(stdout=True, stderr=False, logs=True, stream=False) == b"one\n"
    assert b"".join(ct.attach(logs=True, stream=True)) == b"one\ntwo\nthree\n"


# ---- docker stats ---------------------------------------------------------------
def test_stats_streams(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = running(daemon, names)
    proc = subprocess.Popen([DOCKER, "stats", "--format", "{{.Name}} {{.PIDs}}", c], stdout=subprocess.PIPE,
                            text=True, env=daemon.env)
    try:
        assert proc.stdout is not None
        rows = []
        while len(rows) < 2:
            line = proc.stdout.readline()
            assert line, "stats stream ended"
            if f"{c} 1" in line:
                rows.append(line)
        assert proc.poll() is None  # still streaming
    finally:
        proc.kill()  # the CLI does not leave its stats loop on SIGTERM without a terminal
        proc.wait(timeout=10)


def test_exec_tty_resize(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    ct = client.containers.run("busybox", ["sleep", "300"], detach=True, name=new_name(names, "ex-"))
    api = client.api
    eid = api.exec_create(ct.id, ["sh", "-c", "stty size; sleep 1; stty size"], tty=True)["Id"]
    output = api.exec_start(eid, tty=True, stream=True)
    api.exec_resize(eid, height=30, width=100)  # while it runs, as the CLI does after attaching
    assert b"".join(output).split(b"\r\n")[-2] == b"30 100"
    assert api.exec_inspect(eid)["ExitCode"] == 0
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_resize("nope", height=30, width=100)
    assert err.value.status_code == 404
