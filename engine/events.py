"""Engine event bus, the source of `docker events` and of every live UI.

Subscribers are plain callables invoked on the publishing thread; the API
layer hops them onto its IO loop. A bounded history serves `--since`.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscriber] = []
        self._history: collections.deque[Event] = collections.deque(maxlen=history)

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> Event:
        now = time.time_ns()
        event: Event = {
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if type_ == "container":
            # Fields of the pre-1.22 format that the docker CLI still prints.
            event.update(status=action, id=actor_id, **({"from": attributes["image"]} if attributes and "image" in attributes else {}))
        with self._lock:
            self._history.append(event)
            subs = list(self._subs)
        for sub in subs:
            sub(event)
        return event

    def subscribe(self, fn: Subscriber, since_ns: int | None = None) -> list[Event]:
        """Register `fn`; returns past events at or after `since_ns` atomically with registration."""
        with self._lock:
            self._subs.append(fn)
            if since_ns is None:
                return []
            return [e for e in self._history if e["timeNano"] >= since_ns]

    def unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            if fn in self._subs:
                self._subs.remove(fn)
