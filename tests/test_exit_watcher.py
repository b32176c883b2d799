"""engine.container.exits.ExitWatcher: one thread watches every wait connection."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from engine.container.exits import ExitWatcher


class Seen:
    def __init__(self) -> None:
        self.exits: dict[str, dict[str, Any] | None] = {}
        self.cond = threading.Condition()

    def __call__(self, cid: str, line: dict[str, Any] | None) -> None:
        with self.cond:
            self.exits[cid] = line
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5) -> dict[str, dict[str, Any] | None]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.exits) >= n, timeout), self.exits
            return dict(self.exits)


def test_a_line_sent_in_pieces_and_a_close_without_one() -> None:
    watcher, seen = ExitWatcher(), Seen()
    monitor_a, daemon_a = socket.socketpair()
    monitor_b, daemon_b = socket.socketpair()
    watcher.watch("a", daemon_a, seen)
    watcher.watch("b", daemon_b, seen)
    monitor_a.sendall(b'{"ExitCode": ')
    time.sleep(0.1)
    assert seen.exits == {}
    monitor_a.sendall(b'3, "OOMKilled": false}\n')
    monitor_b.close()  # a monitor that died without a line: the caller reads its exit.json
    assert seen.wait_for(2) == {"a": {"ExitCode": 3, "OOMKilled": False}, "b": None}
    monitor_a.close()
    watcher.close()


def test_many_watches_take_no_thread_each() -> None:
    before = threading.active_count()
    watcher, seen = ExitWatcher(), Seen()
    pairs = [socket.socketpair() for _ in range(200)]
    for i, (_, theirs) in enumerate(pairs):
        watcher.watch(str(i), theirs, seen)
    assert threading.active_count() <= before + 1  # the watcher's own thread
    for i, (ours, _) in enumerate(pairs):
        ours.sendall(b'{"ExitCode": %d}\n' % (i % 256))
    exits = seen.wait_for(200)
    assert all(exits[str(i)] == {"ExitCode": i % 256} for i in range(200))
    for ours, _ in pairs:
        ours.close()
    watcher.close()


def test_a_failing_handler_does_not_stop_the_others() -> None:
    watcher, seen = ExitWatcher(), Seen()

    def broken(cid: str, line: dict[str, Any] | None) -> None:
        raise RuntimeError("boom")

    first, second = socket.socketpair(), socket.socketpair()
    watcher.watch("broken", first[1], broken)
    watcher.watch("fine", second[1], seen)
    first[0].sendall(b'{"ExitCode": 1}\n')
    time.sleep(0.1)
    second[0].sendall(b'{"ExitCode": 0}\n')
    assert seen.wait_for(1) == {"fine": {"ExitCode": 0}}
    watcher.close()


def test_after_close_nothing_is_applied_and_connections_are_closed() -> None:
    watcher, seen = ExitWatcher(), Seen()
    ours, theirs = socket.socketpair()
    watcher.watch("a", theirs, seen)
    watcher.close()
    assert ours.recv(1) == b""  # the daemon's end closed: the container is the next daemon's
    late_ours, late_theirs = socket.socketpair()
    watcher.watch("late", late_theirs, seen)
    assert late_ours.recv(1) == b""
    watcher.report("late", {"ExitCode": 0}, seen)
    time.sleep(0.1)
    assert seen.exits == {}
    watcher.close()  # as the engine's close may come twice
