"""Healthcheck probes: what a container's healthcheck runs, with which timing, and one thread that times them all.

dockerd runs a monitor goroutine per container with a healthcheck
(daemon/health.go). pydock keeps one scheduler thread with a heap of due
times for every watched container, so idle containers cost no thread each
(issue 17's density goal); a due probe runs on a short-lived thread of its
own, since it is an exec that blocks until its command ends or times out.
As dockerd resets its timer after each probe, the next probe is due an
interval after the previous one ended, and a container never has two probes
in flight.

What a result does to State.Health is in state.py (`Health.record`); running
the probe is the exec service's (`ExecService.probe`); the container service
(health.py) ties them to the container's lifecycle.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import InvalidParameter
from engine.timeutil import go_duration
from engine.types.container import ContainerConfig, HealthConfig

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
# dockerd's defaults for a HealthConfig field left at zero (daemon/health.go)
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000  # 1ms: containertypes.MinimumDuration, below which a duration is refused
MAX_OUTPUT = 4096  # bytes of a probe's output kept (dockerd's maxOutputLen)
MAX_WAIT = 3600.0  # longest single wait, in seconds: Go durations reach 292 years, Python's timeouts do not

# runs `cmd` in the container as a probe within `timeout` seconds: (exit code, output); raises ProbeTimeout
ProbeRunner = Callable[[str, list[str], float], tuple[int, str]]


class ProbeTimeout(Exception):
    """The probe still ran when its timeout passed (at `end_ns`, the result's End); it has been killed."""

    def __init__(self, end_ns: int) -> None:
        super().__init__(f"probe timed out at {end_ns}")
        self.end_ns = end_ns


def probe_command(config: ContainerConfig) -> list[str] | None:
    """The command the container's healthcheck runs (dockerd's getProbe and cmdProbe); None when it has none:
    no test, `NONE`, or an unknown test type."""
    test = (config.healthcheck.test if config.healthcheck else None) or []
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        return [*(config.shell or ["/bin/sh", "-c"]), *test[1:]]
    if test[0] != "NONE":
        log.warning("Unknown healthcheck type '%s' (expected 'CMD')", test[0])
    return None


def validate(health: HealthConfig | None) -> None:
    """dockerd's validateHealthCheck at create, in its order: durations of at least 1ms (0 means the
    default), retries not negative."""
    if health is None:
        return
    _check_duration("Interval", health.interval)
    _check_duration("Timeout", health.timeout)
    if health.retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    _check_duration("StartPeriod", health.start_period)
    _check_duration("StartInterval", health.start_interval)


def _check_duration(name: str, value: int) -> None:
    if value != 0 and value < MINIMUM_DURATION:
        raise InvalidParameter(f"{name} in Healthcheck cannot be less than {go_duration(MINIMUM_DURATION)}")


def merge(container: HealthConfig | None, image: HealthConfig | None) -> HealthConfig | None:
    """The healthcheck a container gets (dockerd's merge at create and commit): the image's when the request
    has none, else the request's with the image's values for the fields it leaves at zero."""
    if image is None:
        return container
    if container is None:
        return dataclasses.replace(image)
    return HealthConfig(test=container.test or image.test, interval=container.interval or image.interval,
                        timeout=container.timeout or image.timeout,
                        start_period=container.start_period or image.start_period,
                        start_interval=container.start_interval or image.start_interval,
                        retries=container.retries or image.retries)


@dataclass(frozen=True)
class Timing:
    """A healthcheck's durations (nanoseconds) and retries, dockerd's defaults filled in."""

    interval: int
    timeout: int
    start_period: int
    start_interval: int
    retries: int

    @classmethod
    def of(cls, health: HealthConfig | None) -> Timing:
        h = health or HealthConfig()
        return cls(interval=h.interval or DEFAULT_INTERVAL, timeout=h.timeout or DEFAULT_TIMEOUT,
                   start_period=h.start_period or DEFAULT_START_PERIOD,
                   start_interval=h.start_interval or DEFAULT_START_INTERVAL,
                   retries=h.retries if h.retries > 0 else DEFAULT_RETRIES)


class LimitedOutput:
    """A probe's output: its first MAX_OUTPUT bytes, "..." appended when more was discarded (dockerd's
    limitedBuffer); invalid UTF-8 shows as U+FFFD, as Go's JSON encoder writes it."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._truncated = False

    def write(self, data: bytes) -> None:
        keep = MAX_OUTPUT - len(self._buf)
        self._buf += data[:max(keep, 0)]
        self._truncated = self._truncated or len(data) > keep

    def text(self) -> str:
        return self._buf.decode("utf-8", "replace") + ("..." if self._truncated else "")


@dataclass(eq=False)
class Watch:
    """One container's probing, from `ProbeScheduler.watch` until it is cancelled or replaced."""

    key: str
    probe: Callable[[Watch], float | None]  # runs one probe; the delay (seconds) to the next one, None to stop
    active: bool = True  # cleared by cancel, close, or a newer watch of the same key


class ProbeScheduler:
    """One thread that runs every watched container's probes when due (started with the first watch)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []  # (due, tie-breaker, watch); stale watches are skipped
        self._watches: dict[str, Watch] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, key: str, delay: float, probe: Callable[[Watch], float | None]) -> None:
        """Run `probe` for `key` in `delay` seconds, then after each delay it returns until it returns None or
        the watch is cancelled; replaces an earlier watch of `key` (whose probe in flight is then stale)."""
        with self._cond:
            if self._closed:
                return
            self._deactivate(key)
            w = self._watches[key] = Watch(key, probe)
            self._push(w, delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="health-scheduler", daemon=True)
                self._thread.start()

    def cancel(self, key: str) -> None:
        """No more probes for `key`; one in flight sees its watch inactive and its result is dropped."""
        with self._cond:
            self._deactivate(key)

    def close(self) -> None:
        """Stop the thread and every watch (the engine is closing)."""
        with self._cond:
            self._closed = True
            for key in list(self._watches):
                self._deactivate(key)
            self._cond.notify_all()

    def _deactivate(self, key: str) -> None:
        old = self._watches.pop(key, None)
        if old is not None:
            old.active = False

    def _push(self, w: Watch, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), w))
        self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, w = self._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(min(left, MAX_WAIT))
                    continue
                heapq.heappop(self._heap)
                if w.active:
                    threading.Thread(target=self._probe, args=(w,), name=f"health-{w.key[:12]}", daemon=True).start()

    def _probe(self, w: Watch) -> None:
        try:
            delay = w.probe(w)
        except Exception:  # a bug must not take the scheduler down; this container's probing ends
            log.exception("healthcheck of %s failed", w.key[:12])
            delay = None
        with self._cond:
            if not w.active:
                return
            if delay is None:
                self._deactivate(w.key)
            else:
                self._push(w, delay)
