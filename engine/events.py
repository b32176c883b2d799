"""Engine event bus, the source of `docker events` and of every live UI.

Subscribers are plain callables invoked on the publishing thread; the API
layer hops them onto its IO loop. A bounded history serves `--since` and
`--until`. `matches` applies Docker's event filters, which are deliberately
loose: `container=` matches ID or name prefixes, `image=` also selects the
events of containers created from that image, and unknown keys are ignored.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.errors import InvalidParameter
from engine.filters import Filters
from pydock_common import reference

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

# Event types whose filter value names the actor by ID or name (prefixes allowed).
_NAMED_TYPES = ("container", "daemon", "plugin", "volume", "network", "service", "node", "secret", "config")
# Actions with a ": detail" suffix that `event=` matches by prefix.
_PREFIX_ACTIONS = {"health_status", "exec_create", "exec_start"}


class EventBus:
    def __init__(self, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscriber] = []
        self._history: collections.deque[Event] = collections.deque(maxlen=history)

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> Event:
        now = time.time_ns()
        attrs = dict(attributes or {})
        event: Event = {}
        if type_ in ("container", "image"):
            # Fields of the pre-1.22 format that API < 1.52 still carries and the CLI prints.
            event.update(status=action, id=actor_id)
            if type_ == "container" and "image" in attrs:
                event["from"] = attrs["image"]
        event.update({
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attrs},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        })
        with self._lock:
            self._history.append(event)
            subs = list(self._subs)
        for sub in subs:
            sub(event)
        return event

    def subscribe(self, fn: Subscriber, since_ns: int | None = None, until_ns: int | None = None) -> list[Event]:
        """Register `fn`; returns the past events in [since, until] atomically with registration.

        As in Docker, there is no replay unless one of the bounds is given.
        """
        with self._lock:
            self._subs.append(fn)
            if since_ns is None and until_ns is None:
                return []
            lo, hi = since_ns or 0, until_ns
            return [e for e in self._history if e["timeNano"] >= lo and (hi is None or e["timeNano"] <= hi)]

    def unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            if fn in self._subs:
                self._subs.remove(fn)

    def listeners(self) -> int:
        with self._lock:
            return len(self._subs)


def matches(ev: Event, filters: Filters) -> bool:
    """Docker's event filter (daemon/events/filter.go): every given key must match."""
    actor = ev["Actor"]["ID"]
    attrs = ev["Actor"]["Attributes"]
    action_match = filters.prefix if _PREFIX_ACTIONS & set(filters.get("event")) else filters.exact
    if not (action_match("event", ev["Action"]) and filters.exact("type", ev["Type"])
            and filters.exact("scope", ev["scope"]) and _image_match(ev, filters)
            and filters.labels("label", attrs)):
        return False
    return all(filters.prefix(key, actor) or filters.prefix(key, attrs.get("name", "")) for key in _NAMED_TYPES)


def _image_match(ev: Event, filters: Filters) -> bool:
    wanted = filters.get("image")
    if not wanted:
        return True
    name = ev["Actor"]["Attributes"].get("name" if ev["Type"] == "image" else "image", "")
    actor = ev["Actor"]["ID"]
    return any(v in wanted for v in (actor, name, _strip_tag(actor), _strip_tag(name)))


def _strip_tag(image: str) -> str:
    try:
        return reference.parse(image, default_tag=False).familiar_repository
    except InvalidParameter:
        return image
