"""Dockerfile metadata instructions applied to an image config.

Shared by `docker import -c`, `docker commit -c` and the builder, so the three
agree on how CMD, ENV, LABEL... change an image, as in Docker.
"""
from __future__ import annotations

import json
import shlex
from typing import Any

from engine.errors import InvalidParameter

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD",
           "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def parse_command(args: str, shell: list[str] | None = None) -> list[str]:
    """Exec form (JSON array) stays as is; shell form is wrapped in the shell."""
    args = args.strip()
    if args.startswith("["):
        try:
            value = json.loads(args)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return list(shell or ["/bin/sh", "-c"]) + [args]


def parse_key_values(args: str, instruction: str) -> dict[str, str]:
    """`K=V K2="v 2"` or the legacy single-pair form `K V`."""
    words = shlex.split(args, posix=True)
    if not words:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{instruction} must have two arguments")
        return {key: value.strip()}
    out: dict[str, str] = {}
    for w in words:
        if "=" not in w:
            raise InvalidParameter(f"{instruction} names can not be blank or syntax error: {w[:100]}")
        k, v = w.split("=", 1)
        if not k:
            raise InvalidParameter(f"{instruction} names can not be blank")
        out[k] = v
    return out


def set_env(env: list[str], key: str, value: str) -> list[str]:
    return [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]


def apply_change(config: dict[str, Any], line: str) -> None:
    """Apply one instruction line to a container-style config dict (Cmd, Env, ...)."""
    line = line.strip()
    if not line:
        return
    word, _, args = line.partition(" ")
    instr = word.upper()
    if instr not in ALLOWED:
        raise InvalidParameter(f"{word} is not a valid change command")
    shell = config.get("Shell") or None
    if instr == "CMD":
        config["Cmd"] = parse_command(args, shell)
    elif instr == "ENTRYPOINT":
        config["Entrypoint"] = parse_command(args, shell)
    elif instr == "ENV":
        env = list(config.get("Env") or [])
        for k, v in parse_key_values(args, "ENV").items():
            env = set_env(env, k, v)
        config["Env"] = env
    elif instr == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(parse_key_values(args, "LABEL"))
        config["Labels"] = labels
    elif instr == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for p in args.split():
            ports[p if "/" in p else f"{p}/tcp"] = {}
        config["ExposedPorts"] = ports
    elif instr == "VOLUME":
        vols = dict(config.get("Volumes") or {})
        paths = json.loads(args) if args.strip().startswith("[") else args.split()
        for p in paths:
            vols[p] = {}
        config["Volumes"] = vols
    elif instr == "USER":
        config["User"] = args.strip()
    elif instr == "WORKDIR":
        config["WorkingDir"] = args.strip()
    elif instr == "STOPSIGNAL":
        config["StopSignal"] = args.strip()
    elif instr == "ONBUILD":
        config["OnBuild"] = list(config.get("OnBuild") or []) + [args.strip()]
