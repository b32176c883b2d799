"""Healthchecks (issue 13): State.Health, health_status events, `docker ps` status and filter, Dockerfile
HEALTHCHECK, and probes that outlive a daemon restart; through the real docker CLI and SDK.

Intervals are fractions of a second so that the suite stays fast; the first
tests are units of the rules dockerd applies (no daemon needed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time

import pytest
from conftest import DOCKER, Daemon, new_name

from engine.container.probes import MAX_OUTPUT, LimitedOutput, merge
from engine.container.state import Health, HealthcheckResult
from engine.timeutil import go_duration, rfc3339_ns
from engine.types.container import HealthConfig

MS = 1_000_000


# ---- the rules, as units ----------------------------------------------------------
@pytest.mark.parametrize("ns,text", [(0, "0s"), (999, "999ns"), (1500, "1.5µs"), (MS, "1ms"), (300 * MS, "300ms"),
                                     (30_000 * MS, "30s"), (1_500 * MS, "1.5s"), (90_000 * MS, "1m30s"),
                                     (3_600_000 * MS, "1h0m0s"), (3_723_400 * MS, "1h2m3.4s")])
def test_go_duration_matches_go(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def _result(exit_code: int, start_ns: int) -> HealthcheckResult:
    return HealthcheckResult(start=rfc3339_ns(start_ns), end=rfc3339_ns(start_ns + MS), exit_code=exit_code)


def test_failures_in_start_period_do_not_count_and_log_keeps_five() -> None:
    started = time.time_ns()
    h = Health()
    h.restart()
    assert not h.record(_result(1, started + 100 * MS), retries=1, start_period_ns=1_000 * MS,
                        started_at=rfc3339_ns(started))
    assert (h.status, h.failing_streak) == ("starting", 0)
    assert h.record(_result(1, started + 2_000 * MS), 2, 1_000 * MS, rfc3339_ns(started)) is False
    assert (h.status, h.failing_streak) == ("starting", 1)
    assert h.record(_result(1, started + 3_000 * MS), 2, 1_000 * MS, rfc3339_ns(started)) is True
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    assert h.record(_result(0, started + 4_000 * MS), 2, 1_000 * MS, rfc3339_ns(started)) is True
    assert (h.status, h.failing_streak) == ("healthy", 0)
    for i in range(5):
        h.record(_result(1, started + (5_000 + i) * MS), 2, 1_000 * MS, rfc3339_ns(started))
    # a healthy container's failures count at once, start period or not; the log keeps the last five
    assert (h.status, h.failing_streak, len(h.log)) == ("unhealthy", 5, 5)
    assert h.log[-1].start == rfc3339_ns(started + 5_004 * MS)


def test_probe_output_is_cut_as_dockerd_cuts_it() -> None:
    out = LimitedOutput()
    out.write(b"a" * (MAX_OUTPUT - 1))
    out.write(b"bc")
    out.write(b"\xff")
    assert out.text() == "a" * (MAX_OUTPUT - 1) + "b..."
    short = LimitedOutput()
    short.write(b"ok\xff\n")
    assert short.text() == "ok\ufffd\n"


def test_merge_takes_image_values_for_zero_fields() -> None:
    image = HealthConfig(test=["CMD", "true"], interval=5 * MS, retries=4)
    assert merge(None, image) == image
    assert merge(HealthConfig(test=["NONE"]), image) == HealthConfig(test=["NONE"], interval=5 * MS, retries=4)
    assert merge(HealthConfig(interval=7 * MS), image) == HealthConfig(test=["CMD", "true"], interval=7 * MS,
                                                                         retries=4)
    assert merge(None, None) is None


# ---- through the docker CLI ------------------------------------------------------
def inspect(daemon: Daemon, ref: str) -> dict:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]


def health(daemon: Daemon, ref: str) -> dict | None:
    return inspect(daemon, ref)["State"].get("Health")


def status(daemon: Daemon, ref: str) -> str:
    return daemon.docker("ps", "-a", "--filter", f"name=^{ref}$", "--format", "{{.Status}}", check=True).stdout.strip()


def wait_for(pred, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def health_events(daemon: Daemon, ref: str, since: float) -> list[str]:
    out = daemon.docker("events", "--since", str(since), "--until", str(time.time() + 0.1), "--filter",
                        f"container={ref}", "--filter", "event=health_status", "--format", "{{.Action}}",
                        check=True)
    return out.stdout.splitlines()


def run(daemon: Daemon, names: list[str], *args: str) -> str:
    """A detached container (options, then image and command); returns its name."""
    name = new_name(names, "hc-")
    daemon.docker("run", "-d", "--name", name, *args, check=True)
    return name


def test_healthy_log_events_and_ps(daemon: Daemon, busybox: str, names: list[str]) -> None:
    since = time.time() - 1
    c = run(daemon, names, "--health-cmd", "echo probe-$((40+2))", "--health-interval", "1s", "busybox",
            "sleep", "300")
    h = health(daemon, c)
    assert h is not None and (h["Status"], h["FailingStreak"], h["Log"]) == ("starting", 0, [])
    assert status(daemon, c).endswith("(health: starting)")
    assert inspect(daemon, c)["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "echo probe-$((40+2))"],
                                                           "Interval": 1_000_000_000}
    wait_for(lambda: health(daemon, c)["Status"] == "healthy")
    h = health(daemon, c)
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert (entry["ExitCode"], entry["Output"]) == (0, "probe-42\n")
    assert entry["Start"] <= entry["End"]
    assert status(daemon, c).startswith("Up ") and status(daemon, c).endswith(" (healthy)")
    assert health_events(daemon, c, since) == ["health_status: healthy"]
    # each probe is an exec, with dockerd's exec events
    out = daemon.docker("events", "--since", str(since), "--until", str(time.time() + 0.1), "--filter",
                        f"container={c}", "--format", "{{.Action}}", check=True).stdout.splitlines()
    assert "exec_create: /bin/sh -c echo probe-$((40+2))" in out and "exec_die" in out


def test_unhealthy_after_retries_and_ps_filter(daemon: Daemon, busybox: str, names: list[str]) -> None:
    since = time.time() - 1
    bad = run(daemon, names, "--health-cmd", "echo failing >&2; exit 3", "--health-interval", "200ms",
              "--health-retries", "2", "busybox", "sleep", "300")
    good = run(daemon, names, "--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "300")
    plain = run(daemon, names, "busybox", "sleep", "300")
    wait_for(lambda: health(daemon, bad)["Status"] == "unhealthy" and health(daemon, good)["Status"] == "healthy")
    h = health(daemon, bad)
    assert h["FailingStreak"] >= 2
    assert all((e["ExitCode"], e["Output"]) == (3, "failing\n") for e in h["Log"])
    wait_for(lambda: len(health(daemon, bad)["Log"]) == 5 and health(daemon, bad)["FailingStreak"] > 5)
    assert status(daemon, bad).endswith(" (unhealthy)")
    assert health_events(daemon, bad, since) == ["health_status: unhealthy"]
    assert "Health" not in inspect(daemon, plain)["State"]
    assert status(daemon, plain).startswith("Up ") and "(" not in status(daemon, plain)

    def listed(value: str) -> set[str]:
        out = daemon.docker("ps", "--filter", f"health={value}", "--format", "{{.Names}}", check=True).stdout
        return set(out.split()) & {bad, good, plain}

    assert (listed("unhealthy"), listed("healthy"), listed("none"), listed("starting")) == \
        ({bad}, {good}, {plain}, set())
    out = daemon.docker("ps", "--filter", "health=sick")
    assert out.returncode != 0 and "Unrecognised filter value for health: sick" in out.stderr


def test_timeout_kills_the_probe(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = run(daemon, names, "--health-cmd", "sleep 30", "--health-interval", "200ms", "--health-timeout",
            "300ms", "--health-retries", "2", "busybox", "sleep", "300")
    wait_for(lambda: health(daemon, c)["Status"] == "unhealthy")
    entry = health(daemon, c)["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (300ms)")
    wait_for(lambda: len(health(daemon, c)["Log"]) >= 4)
    # probes that timed out were killed: at most the one in flight runs
    assert daemon.docker("exec", c, "ps", check=True).stdout.count("sleep 30") <= 1


def test_start_period_failures_do_not_count(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = run(daemon, names, "--health-cmd", "false", "--health-interval", "200ms", "--health-retries", "1",
            "--health-start-period", "60s", "--health-start-interval", "200ms", "busybox", "sleep", "300")
    wait_for(lambda: len(health(daemon, c)["Log"]) >= 2)
    h = health(daemon, c)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    assert all(e["ExitCode"] == 1 for e in h["Log"])


def test_start_interval_during_start_period(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = run(daemon, names, "--health-cmd", "false", "--health-interval", "1h", "--health-start-period", "60s",
            "--health-start-interval", "200ms", "busybox", "sleep", "300")
    wait_for(lambda: len(health(daemon, c)["Log"]) >= 2)
    assert health(daemon, c)["Status"] == "starting"


def test_pause_stop_and_restart(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = run(daemon, names, "--health-cmd", "true", "--health-interval", "500ms", "busybox", "sleep", "300")
    wait_for(lambda: health(daemon, c)["Status"] == "healthy")
    daemon.docker("pause", c, check=True)
    assert health(daemon, c)["Status"] == "unhealthy"  # as dockerd: probing stopped
    assert status(daemon, c).endswith("(Paused)")
    daemon.docker("unpause", c, check=True)
    wait_for(lambda: health(daemon, c)["Status"] == "healthy")
    daemon.docker("stop", "-t", "0", c, check=True)
    log = health(daemon, c)["Log"]
    assert health(daemon, c)["Status"] == "unhealthy"
    assert status(daemon, c).startswith("Exited (137)")
    time.sleep(0.5)
    assert health(daemon, c)["Log"] == log  # no probe of a stopped container
    daemon.docker("start", c, check=True)
    h = health(daemon, c)
    assert (h["Status"], h["FailingStreak"], h["Log"]) == ("starting", 0, log)
    wait_for(lambda: health(daemon, c)["Status"] == "healthy")


def test_dockerfile_healthcheck_none_and_no_healthcheck(daemon: Daemon, busybox: str, names: list[str],
                                                         tmp_path) -> None:  # type: ignore[no-untyped-def]
    def build(tag: str, dockerfile: str) -> None:
        ctx = tmp_path / tag
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
        proc = subprocess.run([DOCKER, "build", "-q", "-t", tag, str(ctx)], capture_output=True, text=True,
                              timeout=120, env={**daemon.env, "DOCKER_BUILDKIT": "0"}, check=False)
        assert proc.returncode == 0, proc.stderr

    build("hc-ready:1", """
        FROM busybox
        HEALTHCHECK --interval=200ms --retries=1 CMD ["test", "-e", "/tmp/ready"]
        CMD ["sleep", "300"]
    """)
    build("hc-none:1", """
        FROM hc-ready:1
        HEALTHCHECK NONE
    """)
    try:
        image_hc = {"Test": ["CMD", "test", "-e", "/tmp/ready"], "Interval": 200 * MS, "Retries": 1}
        c = run(daemon, names, "hc-ready:1")
        assert inspect(daemon, c)["Config"]["Healthcheck"] == image_hc
        wait_for(lambda: health(daemon, c)["Status"] == "unhealthy")
        daemon.docker("exec", c, "touch", "/tmp/ready", check=True)
        wait_for(lambda: health(daemon, c)["Status"] == "healthy")
        # an option given at run overrides that field only
        longer = run(daemon, names, "--health-interval", "1h", "hc-ready:1")
        assert inspect(daemon, longer)["Config"]["Healthcheck"] == {**image_hc, "Interval": 3_600_000 * MS}
        for off in (run(daemon, names, "--no-healthcheck", "hc-ready:1"), run(daemon, names, "hc-none:1")):
            assert inspect(daemon, off)["Config"]["Healthcheck"]["Test"] == ["NONE"]
            time.sleep(0.3)
            assert "Health" not in inspect(daemon, off)["State"]
            assert "(" not in status(daemon, off)
    finally:
        daemon.docker("rm", "-f", *names)
        daemon.docker("rmi", "hc-none:1", "hc-ready:1")


def test_bad_healthcheck_is_refused_before_anything_is_made(daemon: Daemon, busybox: str, client) -> None:  # type: ignore[no-untyped-def]
    import docker
    before = daemon.docker("ps", "-aq").stdout
    cases = [({"test": ["CMD", "true"], "interval": 500_000}, "Interval in Healthcheck cannot be less than 1ms"),
             ({"test": ["CMD", "true"], "timeout": 5}, "Timeout in Healthcheck cannot be less than 1ms"),
             ({"test": ["CMD", "true"], "retries": -1}, "Retries in Healthcheck cannot be negative"),
             ({"test": ["CMD", "true"], "start_period": 1}, "StartPeriod in Healthcheck cannot be less than 1ms")]
    for hc, message in cases:
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", "true", healthcheck=hc)
        assert e.value.status_code == 400 and e.value.explanation == message
    assert daemon.docker("ps", "-aq").stdout == before


def test_sdk_healthcheck(daemon: Daemon, client, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    name = new_name(names, "hc-")
    ctr = client.containers.run("busybox", ["sleep", "300"], name=name, detach=True,
                                healthcheck={"test": ["CMD", "sh", "-c", "exit 0"], "interval": 500 * MS})
    assert ctr.health == "unknown"  # the SDK's attributes are from before the start: no Health yet
    ctr.reload()
    assert ctr.health == "starting"
    wait_for(lambda: (ctr.reload(), ctr.health)[1] == "healthy")
    assert [c.name for c in client.containers.list(filters={"health": "healthy"})].count(name) == 1


def test_probes_continue_after_daemon_restart(daemon: Daemon, busybox: str, names: list[str]) -> None:
    c = run(daemon, names, "--health-cmd", "test -e /tmp/ready", "--health-interval", "200ms",
            "--health-retries", "1", "busybox", "sleep", "300")
    wait_for(lambda: health(daemon, c)["Status"] == "unhealthy")
    pid = inspect(daemon, c)["State"]["Pid"]
    daemon.stop()
    os.kill(pid, 0)  # the container outlives the daemon
    daemon.start()
    since = time.time()
    last = health(daemon, c)["Log"][-1]["End"]
    assert health(daemon, c)["Status"] == "unhealthy"  # kept in the record
    wait_for(lambda: health(daemon, c)["Log"][-1]["End"] > last)
    daemon.docker("exec", c, "touch", "/tmp/ready", check=True)
    wait_for(lambda: health(daemon, c)["Status"] == "healthy")
    assert health_events(daemon, c, since) == ["health_status: healthy"]


COMPOSE_FILE = """\
services:
  db:
    image: busybox
    command: sh -c "sleep 1; touch /tmp/ready; exec sleep 1000"
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 200ms
      retries: 30
  app:
    image: busybox
    command: sleep 1000
    depends_on:
      db:
        condition: service_healthy
  sick:
    image: busybox
    command: sleep 1000
    healthcheck:
      test: ["CMD", "false"]
      interval: 200ms
      retries: 1
    profiles: [sick]
  needs-sick:
    image: busybox
    command: sleep 1000
    depends_on:
      sick:
        condition: service_healthy
    profiles: [sick]
"""


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_waits_for_service_healthy(daemon: Daemon, busybox: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    project = new_name([], "hcp")

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "--project-name", project, "--profile", "sick", *args],
                              cwd=tmp_path, env=daemon.env, capture_output=True, text=True, timeout=120, check=False)

    try:
        since = time.time() - 1
        up = compose("up", "-d", "app")
        assert up.returncode == 0, up.stderr
        assert inspect(daemon, f"{project}_app_1")["State"]["Running"]
        # app started only once db's probe passed, which takes db a second
        events = daemon.docker("events", "--since", str(since), "--until", str(time.time() + 0.1), "--filter",
                               f"label=com.docker.compose.project={project}", "--filter", "event=start", "--filter",
                               "event=health_status", "--format", "{{.Actor.Attributes.name}} {{.Action}}",
                               check=True).stdout.splitlines()
        assert events == [f"{project}_db_1 start", f"{project}_db_1 health_status: healthy", f"{project}_app_1 start"]
        up = compose("up", "-d", "needs-sick")
        assert up.returncode != 0 and "is unhealthy" in up.stderr
        assert inspect(daemon, f"{project}_sick_1")["State"]["Health"]["Status"] == "unhealthy"
        assert daemon.docker("inspect", f"{project}_needs-sick_1").returncode != 0  # never created
    finally:
        compose("down", "-t", "0")
