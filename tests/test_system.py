"""System endpoints through the real docker CLI and the docker SDK: version, info,
system df, events, top and stats."""
from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
import uuid

from conftest import DOCKER, Daemon, new_name

ZERO_TIME = "0001-01-01T00:00:00Z"
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4,
         "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}


def parse_size(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", text.strip())
    assert m, text
    return float(m.group(1)) * UNITS[m.group(2)]




def run_detached(daemon: Daemon, names: list[str], *cmd: str) -> str:
    name = new_name(names, "sys-")
    daemon.docker("run", "-d", "--name", name, "busybox", *cmd, check=True)
    return name


def events_json(daemon: Daemon, since: str, until: str, *filters: str) -> list[dict]:
    args = ["events", "--since", since, "--until", until, "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    out = daemon.docker(*args, check=True, timeout=30).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def stats_row(daemon: Daemon, name: str) -> dict:
    out = daemon.docker("stats", "--no-stream", "--format", "{{json .}}", name, check=True, timeout=30).stdout
    return json.loads(out.strip())


# ---- version / info / df ----------------------------------------------------
def test_version_server_api_version(daemon: Daemon) -> None:
    out = daemon.docker("version", check=True).stdout
    server = out.split("Server:", 1)[1]
    assert re.search(r"API version:\s+1\.47 \(minimum version 1\.24\)", server), out
    assert daemon.docker("version", "--format", "{{.Server.APIVersion}}", check=True).stdout.strip() == "1.47"


def test_info_counts(daemon: Daemon, busybox: str, names: list[str]) -> None:
    before = json.loads(daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    name = new_name(names, "sys-")
    daemon.docker("create", "--name", name, "busybox", "true", check=True)
    proc = daemon.docker("info")
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stdout and "error" not in proc.stderr.lower()
    assert re.search(r"^ Containers: \d+$", proc.stdout, re.MULTILINE)
    assert re.search(r"^ Images: [1-9]\d*$", proc.stdout, re.MULTILINE)
    after = json.loads(daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert after["Containers"] == before["Containers"] + 1
    assert after["ContainersStopped"] == before["ContainersStopped"] + 1
    assert after["MemTotal"] > 0 and after["NCPU"] >= 1
    assert after["CgroupVersion"] in ("1", "2")


def test_info_counts_event_listeners(daemon: Daemon) -> None:
    proc = subprocess.Popen([DOCKER, "events"], env=daemon.env, stdout=subprocess.DEVNULL)
    try:
        assert wait_for_listeners(daemon, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_system_df(daemon: Daemon, busybox: str, names: list[str], client) -> None:  # type: ignore[no-untyped-def]
    run_detached(daemon, names, "sleep", "300")
    out = daemon.docker("system", "df", check=True).stdout
    assert re.search(r"^Images\s+\d+\s+\d+", out, re.MULTILINE), out
    assert re.search(r"^Containers\s+\d+\s+\d+", out, re.MULTILINE), out
    rows = {r["Type"]: r for r in map(json.loads, daemon.docker(
        "system", "df", "--format", "{{json .}}", check=True).stdout.splitlines())}
    assert int(rows["Containers"]["Active"]) >= 1
    assert int(rows["Images"]["Active"]) >= 1
    # the CLI computes "reclaimable" from images in use, which needs their real SharedSize, not -1
    in_use = [i for i in client.api.df()["Images"] if i["Containers"] > 0]
    assert in_use and all(0 <= i["SharedSize"] <= i["Size"] for i in in_use), in_use
    verbose = daemon.docker("system", "df", "-v", check=True).stdout
    assert names[0] in verbose


# ---- events -------------------------------------------------------------------
def test_events_window_sees_container_lifecycle(daemon: Daemon, busybox: str) -> None:
    since = str(int(time.time()) - 1)
    daemon.docker("run", "--rm", "busybox", "true", check=True)
    until = f"{time.time() + 0.5:.9f}"
    time.sleep(0.6)
    evs = [e for e in events_json(daemon, since, until) if e["Type"] == "container"]
    last_create = max(i for i, e in enumerate(evs) if e["Action"] == "create")
    cid = evs[last_create]["Actor"]["ID"]
    actions = [e["Action"] for e in evs if e["Actor"]["ID"] == cid]
    for a, b in zip(["create", "start", "die", "destroy"], ["start", "die", "destroy", None]):
        assert a in actions
        if b:
            assert actions.index(a) < actions.index(b), actions
    die = next(e for e in evs if e["Actor"]["ID"] == cid and e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["image"] == "busybox"
    assert die["status"] == "die" and die["id"] == cid and die["from"] == "busybox"


def test_events_filter_event_start(daemon: Daemon, busybox: str) -> None:
    since = str(int(time.time()) - 1)
    daemon.docker("run", "--rm", "busybox", "true", check=True)
    until = f"{time.time():.9f}"
    evs = events_json(daemon, since, until, "event=start")
    assert evs and all(e["Action"] == "start" for e in evs)
    both = events_json(daemon, since, until, "event=start", "event=die")
    assert {e["Action"] for e in both} == {"start", "die"}


def test_events_filters_container_and_image(daemon: Daemon, busybox: str, names: list[str]) -> None:
    since = str(int(time.time()) - 1)
    name = new_name(names, "sys-")
    daemon.docker("run", "--name", name, "busybox", "true", check=True)
    until = f"{time.time():.9f}"
    by_name = events_json(daemon, since, until, f"container={name}")
    assert {e["Action"] for e in by_name} >= {"create", "start", "die"}
    assert all(e["Actor"]["Attributes"]["name"] == name for e in by_name)
    by_prefix = events_json(daemon, since, until, f"container={name[:-2]}")
    assert len(by_prefix) == len(by_name)
    # Docker's image filter also selects events of containers made from the image
    by_image = events_json(daemon, since, until, "image=busybox", f"container={name}")
    assert len(by_image) == len(by_name)
    assert events_json(daemon, since, until, "image=nosuchimage", f"container={name}") == []
    assert events_json(daemon, since, until, "type=image", f"container={name}") == []


def test_events_until_alone_replays_history(daemon: Daemon, busybox: str, names: list[str]) -> None:
    name = new_name(names, "sys-")
    daemon.docker("create", "--name", name, "busybox", "true", check=True)
    out = daemon.docker("events", "--until", f"{time.time():.9f}", "--filter", f"container={name}",
                        check=True, timeout=30).stdout
    assert "container create" in out and f"name={name}" in out


def test_events_since_after_until(daemon: Daemon) -> None:
    proc = daemon.docker("events", "--since", "2000", "--until", "1000")
    assert proc.returncode != 0
    assert "`since` time (2000) cannot be after `until` time (1000)" in proc.stderr


def wait_for_listeners(daemon: Daemon, n: int, timeout: float = 15) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = daemon.docker("info", "--format", "{{.NEventsListener}}", check=True).stdout.strip()
        if int(info) >= n:
            return True
        time.sleep(0.1)
    return False


def test_events_stream_live(daemon: Daemon, busybox: str) -> None:
    name = "sys-live-" + uuid.uuid4().hex[:8]
    proc = subprocess.Popen([DOCKER, "events", "--format", "{{json .}}", "--filter", f"container={name}"],
                            env=daemon.env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        assert wait_for_listeners(daemon, 1)
        daemon.docker("run", "--rm", "--name", name, "busybox", "true", check=True)
        actions = []
        deadline = time.time() + 20
        while "destroy" not in actions and time.time() < deadline:
            try:
                actions.append(json.loads(lines.get(timeout=1))["Action"])
            except queue.Empty:
                pass
        assert [a for a in actions if a in ("create", "start", "die", "destroy")] == \
            ["create", "start", "die", "destroy"], actions
        assert proc.poll() is None  # still streaming
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sdk_events_generator(client, busybox: str) -> None:  # type: ignore[no-untyped-def]
    name = "sys-sdk-" + uuid.uuid4().hex[:8]
    gen = client.events(decode=True, filters={"container": name})
    try:
        threading.Timer(0.3, lambda: client.containers.run("busybox", "true", name=name, remove=True)).start()
        seen = []
        for ev in gen:
            assert ev["Type"] == "container" and ev["Actor"]["Attributes"]["name"] == name
            seen.append(ev["Action"])
            if ev["Action"] == "destroy":
                break
        assert seen.index("create") < seen.index("start") < seen.index("die") < seen.index("destroy")
    finally:
        gen.close()


# ---- top ----------------------------------------------------------------------
def test_top(daemon: Daemon, busybox: str, names: list[str]) -> None:
    name = run_detached(daemon, names, "sleep", "301")
    since = f"{time.time():.9f}"
    out = daemon.docker("top", name, check=True).stdout.splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(out) == 2 and out[1].split()[0] == "root" and out[1].rstrip().endswith("sleep 301")
    pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout.strip()
    assert out[1].split()[1] == pid
    custom = daemon.docker("top", name, "-o", "pid,args", check=True).stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert custom[1].split() == [pid, "sleep", "301"]
    aux = daemon.docker("top", name, "aux", check=True).stdout.splitlines()
    assert aux[0].split()[:2] == ["USER", "PID"] and len(aux) == 2
    tops = events_json(daemon, since, f"{time.time():.9f}", "event=top", f"container={name}")
    assert len(tops) == 3  # Docker logs a "top" event per listing


def test_top_errors(daemon: Daemon, busybox: str, names: list[str]) -> None:
    stopped = new_name(names, "sys-")
    daemon.docker("create", "--name", stopped, "busybox", "true", check=True)
    cid = daemon.docker("inspect", "-f", "{{.Id}}", stopped, check=True).stdout.strip()
    proc = daemon.docker("top", stopped)
    assert proc.returncode == 1
    assert f"Error response from daemon: Container {cid} is not running" in proc.stderr
    running = run_detached(daemon, names, "sleep", "302")
    bad = daemon.docker("top", running, "--no-such-option")
    assert bad.returncode == 1 and "Error response from daemon: ps: " in bad.stderr, bad.stderr
    missing = daemon.docker("top", "sys-no-such-container")
    assert "No such container: sys-no-such-container" in missing.stderr


# ---- stats --------------------------------------------------------------------
def test_stats_no_stream_running(daemon: Daemon, busybox: str, names: list[str]) -> None:
    idle = run_detached(daemon, names, "sleep", "303")
    busy = run_detached(daemon, names, "sh", "-c", "while :; do :; done")
    out = daemon.docker("stats", "--no-stream", idle, busy, check=True, timeout=30).stdout
    header = out.splitlines()[0]
    for col in ("CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"):
        assert col in header
    for name in (idle, busy):
        row = stats_row(daemon, name)
        usage, limit = row["MemUsage"].split(" / ")
        assert 0 < parse_size(usage) < parse_size(limit)
        assert int(row["PIDs"]) >= 1
        assert row["CPUPerc"].endswith("%") and row["MemPerc"].endswith("%")
        assert all(parse_size(v) >= 0 for v in row["NetIO"].split(" / ") + row["BlockIO"].split(" / "))
    assert float(stats_row(daemon, busy)["CPUPerc"].rstrip("%")) > 5.0


def test_stats_stopped_container_is_zero(daemon: Daemon, busybox: str, names: list[str]) -> None:
    name = new_name(names, "sys-")
    daemon.docker("create", "--name", name, "busybox", "true", check=True)
    row = stats_row(daemon, name)
    assert row["MemUsage"] == "0B / 0B" and row["PIDs"] == "0" and row["CPUPerc"] == "0.00%"


def test_sdk_stats_one_object(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    name = new_name(names, "sys-")
    ct = client.containers.run("busybox", "sleep 304", name=name, detach=True)
    s = ct.stats(stream=False)
    assert {"read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
            "precpu_stats", "memory_stats", "name", "id"} <= set(s)
    assert s["name"] == "/" + name and s["id"] == ct.id
    assert s["preread"] != ZERO_TIME and s["read"] > s["preread"]  # two samples, like Docker
    cpu = s["cpu_stats"]
    assert cpu["online_cpus"] >= 1 and cpu["system_cpu_usage"] > s["precpu_stats"]["system_cpu_usage"] > 0
    assert cpu["cpu_usage"]["total_usage"] >= s["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    mem = s["memory_stats"]
    assert mem["usage"] > 0 and 0 < mem["limit"] and isinstance(mem["stats"], dict)
    assert s["pids_stats"]["current"] == 1
    one = ct.stats(stream=False, one_shot=True)
    assert one["preread"] == ZERO_TIME and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_sdk_stats_stream(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    ct = client.containers.run("busybox", "sleep 305", name=new_name(names, "sys-"), detach=True)
    frames = ct.stats(stream=True, decode=True)
    try:
        first, second = next(frames), next(frames)
    finally:
        frames.close()
    assert first["preread"] == ZERO_TIME
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]


def test_stats_api_errors(client, busybox: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    ct = client.containers.create("busybox", "true", name=new_name(names, "sys-"))
    api = client.api
    res = api._get(api._url("/containers/{0}/stats", ct.id), params={"stream": "1", "one-shot": "1"})
    assert res.status_code == 400
    assert res.json()["message"] == "cannot have stream=true and one-shot=true"
    res = api._get(api._url("/containers/{0}/stats", "sys-no-such"), params={"stream": "0"})
    assert res.status_code == 404 and res.json()["message"] == "No such container: sys-no-such"
    zero = ct.stats(stream=False)
    assert zero["read"] == ZERO_TIME and zero["memory_stats"] == {} and zero["pids_stats"] == {}
