"""Type checks for request bodies, with the 400 messages every service shares.

JSON from clients is untrusted: a field of the wrong type must be a clear
400 naming the field, never a 500 from deep inside a service.
"""
from __future__ import annotations

from typing import Any

from .errors import InvalidParameter


def string(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid {key}: must be a string")
    return value


def string_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid {key}: must be a list of strings")
    return value


def obj(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {key}: must be an object")
    return value


def string_map(value: Any, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"invalid {key}: must be a map of strings")
    return value
