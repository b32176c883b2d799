"""Where an unprivileged user's engine keeps its socket: shared by the daemon (engine/rootless) and its clients.

`$XDG_RUNTIME_DIR` (the per-user 0700 tmpfs systemd-logind makes) when it is
the user's own; otherwise /tmp/pydock-<uid>, which the daemon creates 0700
and refuses to use when someone else made it first.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping


def fallback_dir(uid: int) -> str:
    """The private directory under /tmp for a user without `$XDG_RUNTIME_DIR`."""
    return f"/tmp/pydock-{uid}"


def runtime_dir(uid: int, env: Mapping[str, str]) -> str:
    """`$XDG_RUNTIME_DIR` when it is an absolute path to the user's own directory; "" otherwise (e.g. a variable
    inherited from another user through `su`, naming a directory this user cannot write)."""
    path = env.get("XDG_RUNTIME_DIR") or ""
    if not os.path.isabs(path):
        return ""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return path if stat.S_ISDIR(st.st_mode) and st.st_uid == uid else ""


def private_dir(uid: int, env: Mapping[str, str]) -> str:
    """The directory holding the user's socket and (below `pydock/`) its engine's runtime state."""
    return runtime_dir(uid, env) or fallback_dir(uid)


def user_socket(uid: int, env: Mapping[str, str]) -> str:
    """The API socket of the user's own (rootless) pydockd."""
    return os.path.join(private_dir(uid, env), "pydock.sock")
