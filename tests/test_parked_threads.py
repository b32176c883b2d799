"""The handlers' threads for long-lived work, parked between uses (engine/api/parked.py)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from engine.api.parked import ParkedThreads


def _until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert done()


def test_a_finished_job_parks_its_thread_for_the_next() -> None:
    threads = ParkedThreads()
    seen: list[tuple[threading.Thread, str]] = []

    def job() -> None:
        me = threading.current_thread()
        seen.append((me, me.name))

    threads.run(job, name="attach")
    _until(lambda: threads.parked() == 1)
    threads.run(job, name="exec")
    _until(lambda: len(seen) == 2 and threads.parked() == 1)
    (first, first_name), (second, second_name) = seen
    assert first is second and first is not threading.current_thread()
    assert (first_name, second_name) == ("attach", "exec")


def test_jobs_at_once_each_get_a_thread_however_many() -> None:
    """Sessions last as long as their containers: none may wait for another to end."""
    threads = ParkedThreads()
    release = threading.Event()
    running: set[int] = set()
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running.add(threading.get_ident())
        release.wait(5)

    for _ in range(20):
        threads.run(job, name="session")
    try:
        _until(lambda: len(running) == 20)
    finally:
        release.set()
    _until(lambda: threads.parked() == 20)


def test_a_failing_job_leaves_its_thread_serving(caplog: pytest.LogCaptureFixture) -> None:
    threads = ParkedThreads()
    ran = threading.Event()

    def fails() -> None:
        raise OSError("peer gone")

    threads.run(fails, name="attach")
    _until(lambda: threads.parked() == 1)
    assert "attach failed" in caplog.text
    threads.run(ran.set, name="attach")
    assert ran.wait(5)


def test_idle_threads_end() -> None:
    """A burst leaves no threads behind once they have been idle a while."""
    threads = ParkedThreads(idle_seconds=0.1)
    idents: list[threading.Thread] = []
    release = threading.Event()

    def job() -> None:
        idents.append(threading.current_thread())
        release.wait(5)

    for _ in range(3):
        threads.run(job, name="session")
    _until(lambda: len(idents) == 3)
    release.set()
    _until(lambda: threads.parked() == 0 and not any(t.is_alive() for t in idents))
    done = threading.Event()
    threads.run(done.set, name="session")  # a new thread when none is parked
    assert done.wait(5)
