"""The `filters=` argument of Docker's list and prune endpoints, parsed and matched in one place.

dockerd decodes every `filters` query into one type (moby's filters.Args) and
each backend asks it the same few questions: is this key allowed, does a value
equal / prefix / search this field, do the labels match, what does a boolean key
say. Doing the same here keeps the answers, and the 400 messages for bad
filters, identical across containers, images, networks, volumes and events.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping

from engine.errors import EngineError, InvalidParameter
from engine.timeutil import parse_api_time

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class Filters:
    """Filter key -> the values given for it; an absent key filters nothing."""

    def __init__(self, args: Mapping[str, Iterable[str]] | None = None) -> None:
        self._args: dict[str, list[str]] = {k: list(v) for k, v in (args or {}).items()}

    @classmethod
    def parse(cls, raw: str) -> Filters:
        """A query's JSON, in either of Docker's forms: {"k": ["v"]} or the legacy {"k": {"v": true}}."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise InvalidParameter(f"invalid filter: {e}") from e
        if not isinstance(data, dict):
            raise InvalidParameter("invalid filter: must be an object")
        args: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                args[key] = [v for v, on in value.items() if on]
            elif isinstance(value, list):
                args[key] = [str(v) for v in value]
            else:
                raise InvalidParameter(f"invalid filter value for {key}")
        return cls(args)

    def validate(self, accepted: Iterable[str]) -> Filters:
        """dockerd's Args.Validate: a key the endpoint does not know is a 400."""
        allowed = set(accepted)
        for key in self._args:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
        return self

    def __contains__(self, key: object) -> bool:
        return bool(self._args.get(key)) if isinstance(key, str) else False

    def __bool__(self) -> bool:
        return any(self._args.values())

    def get(self, key: str) -> list[str]:
        return list(self._args.get(key, ()))

    def without(self, *keys: str) -> Filters:
        return Filters({k: v for k, v in self._args.items() if k not in keys})

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._args.items()}

    # ---- matching (each is True when the key was not given) ----------------
    def exact(self, key: str, value: str) -> bool:
        """ExactMatch: the field equals one of the values."""
        wanted = self._args.get(key)
        return not wanted or value in wanted

    def prefix(self, key: str, value: str) -> bool:
        """FuzzyMatch: one of the values is the field or a prefix of it (IDs, names)."""
        wanted = self._args.get(key)
        return not wanted or any(value.startswith(w) for w in wanted)

    def contains(self, key: str, value: str) -> bool:
        """One of the values is a substring of the field (network names)."""
        wanted = self._args.get(key)
        return not wanted or any(w in value for w in wanted)

    def search(self, key: str, value: str) -> bool:
        """One of the values, as a regular expression, is found in the field (container and volume names).

        An invalid pattern matches nothing, as Go's regexp.MatchString error is ignored by dockerd.
        """
        wanted = self._args.get(key)
        return not wanted or any(_search(w, value) for w in wanted)

    def labels(self, key: str, labels: Mapping[str, str] | None) -> bool:
        """MatchKVList: every value `k` or `k=v` is among the labels."""
        wanted = self._args.get(key)
        return not wanted or all(_has_label(labels or {}, w) for w in wanted)

    def no_labels(self, key: str, labels: Mapping[str, str] | None) -> bool:
        """`label!=`: none of the values `k` or `k=v` is among the labels."""
        return not any(_has_label(labels or {}, w) for w in self._args.get(key, ()))

    def times(self, key: str) -> list[int]:
        """`until`-style values in ns since the epoch: a timestamp, or a duration before now ("24h", "90m")."""
        return [_time_ns(key, v) for v in self._args.get(key, ())]

    def boolean(self, key: str, default: bool) -> bool:
        """GetBoolOrDefault: the key's value as Go's strconv.ParseBool reads it, or `default` when absent."""
        values = self._args.get(key)
        if not values:
            return default
        value = values[0]
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidParameter(f"invalid filter '{key}={value}'")


def _time_ns(key: str, value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([hms])", value.strip())
    if m:
        return time.time_ns() - int(float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)] * 1e9)
    try:
        return parse_api_time(value)
    except (ValueError, EngineError):
        raise InvalidParameter(f"invalid filter '{key}={value}'") from None


def _has_label(labels: Mapping[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
