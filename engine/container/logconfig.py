"""HostConfig.LogConfig: which drivers pydock offers, their options, and where their files live.

dockerd checks option keys at create and option values only when the logger
starts; pydock checks both at create (with the messages dockerd's loggers
give), because a container that can never start is better refused up front.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidParameter
from engine.types.container import LogConfig
from pydock_common.humanize import from_human_size

JSON_FILE, LOCAL, NONE = "json-file", "local", "none"
DRIVERS = (JSON_FILE, LOCAL, NONE)
_BUILTIN_OPTS = {"mode", "max-buffer-size"}
_JSON_FILE_OPTS = {"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
_LOCAL_OPTS = {"max-file", "max-size", "compress"}
_LOCAL_MAX_SIZE = 20 * 1024 * 1024
_LOCAL_MAX_FILE = 5
_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
          "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


@dataclass(frozen=True)
class LogSpec:
    """What the monitor needs to write (and rotate) a container's log."""

    driver: str
    path: str  # "" for the none driver
    max_size: int  # bytes; 0 = never rotate
    max_file: int
    compress: bool

    def to_shim(self) -> dict[str, Any]:
        return {"driver": self.driver, "path": self.path, "max_size": self.max_size,
                "max_file": self.max_file, "compress": self.compress}




def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise InvalidParameter(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _parse_bool(text: str) -> bool:
    if text not in _BOOLS:
        raise InvalidParameter(f'strconv.ParseBool: parsing "{text}": invalid syntax')
    return _BOOLS[text]


def validate(raw: LogConfig) -> LogConfig:
    """The LogConfig to store: as given, with dockerd's defaults for an empty type or config."""
    driver = raw.type or JSON_FILE
    opts = raw.config or {}
    if driver != NONE:
        mode = opts.get("mode", "")
        if mode not in ("", "blocking", "non-blocking"):
            raise InvalidParameter(f"logger: logging mode not supported: {mode}")
        if "max-buffer-size" in opts and mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        if driver not in DRIVERS:
            raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
        allowed = _JSON_FILE_OPTS if driver == JSON_FILE else _LOCAL_OPTS
        for key in opts:
            if key not in allowed and key not in _BUILTIN_OPTS:
                suffix = "json-file log driver" if driver == JSON_FILE else f"log driver {driver}"
                raise InvalidParameter(f"unknown log opt '{key}' for {suffix}")
    config = LogConfig(driver, dict(opts))
    spec(config, "")  # value errors, as the logger would report them at start
    return config


def spec(config: LogConfig, container_dir: str) -> LogSpec:
    """Turn a validated LogConfig into rotation limits and the file the monitor writes."""
    driver, opts = config.type or JSON_FILE, config.config or {}
    if driver == NONE:
        return LogSpec(NONE, "", 0, 1, False)
    if driver == LOCAL:
        return _local_spec(opts, container_dir)
    return _json_file_spec(opts, container_dir)


def _json_file_spec(opts: dict[str, str], container_dir: str) -> LogSpec:
    max_size = 0
    if "max-size" in opts:
        max_size = from_human_size(opts["max-size"])
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        max_file = _atoi(opts["max-file"])
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        compress = _parse_bool(opts["compress"])
        if compress and (max_file == 1 or not max_size):
            raise InvalidParameter("compress cannot be true when max-file is less than 2 or max-size is not set")
    cid = os.path.basename(container_dir)
    return LogSpec(JSON_FILE, os.path.join(container_dir, f"{cid}-json.log"), max_size, max_file, compress)


def _local_spec(opts: dict[str, str], container_dir: str) -> LogSpec:
    max_size, max_file, compress = _LOCAL_MAX_SIZE, _LOCAL_MAX_FILE, True
    if "max-size" in opts:
        try:
            max_size = from_human_size(opts["max-size"])
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid value for max-size: {opts['max-size']}: {e.message}") from None
    if "max-file" in opts:
        try:
            max_file = _atoi(opts["max-file"])
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid value for max-file: {opts['max-file']}: {e.message}") from None
    if "compress" in opts:
        try:
            compress = _parse_bool(opts["compress"])
        except InvalidParameter as e:
            raise InvalidParameter(f"error reading compress log option: {e.message}") from None
    if max_size < 0:
        raise InvalidParameter("max size should be a positive number")
    if max_file < 0:
        raise InvalidParameter("max file count cannot be less than 0")
    if compress and max_file <= 1:
        raise InvalidParameter("compression cannot be enabled when max file count is 1")
    return LogSpec(LOCAL, os.path.join(container_dir, "local-logs", "container.log"), max_size,
                   max(max_file, 1), compress)
