"""Where a rootless engine keeps its state: the user's own directories, never the system's.

The layout follows the XDG base directories, as rootless Docker and Podman
do: persistent data under `$XDG_DATA_HOME` (~/.local/share/pydock), runtime
state and the API socket under `$XDG_RUNTIME_DIR` (a per-user tmpfs that
systemd-logind makes 0700), configuration under `$XDG_CONFIG_HOME`. Without
a runtime directory (a login that did not go through logind, `setpriv`, cron)
both fall back to /tmp/pydock-<uid>, which must then be the user's own 0700
directory: /tmp is shared, and another user could have made that name first
to read or hijack the socket. Clients find the socket the same way
(pydock_common.userpaths).
"""
from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from pydock_common.userpaths import private_dir, user_socket


class UnsafeDirectory(Exception):
    """A directory the engine would keep private state in belongs to someone else or is open to others."""


@dataclass(frozen=True)
class UserPaths:
    """A user's default data root, exec root, API socket and daemon.json."""

    data_root: str
    exec_root: str
    socket: str
    config_file: str

    @classmethod
    def of(cls, uid: int, env: Mapping[str, str]) -> UserPaths:
        """The defaults for `uid`, from its environment (`HOME`, `XDG_*`) or its passwd entry."""
        home = env.get("HOME") or pwd.getpwuid(uid).pw_dir
        data_home = _absolute(env.get("XDG_DATA_HOME")) or os.path.join(home, ".local", "share")
        config_home = _absolute(env.get("XDG_CONFIG_HOME")) or os.path.join(home, ".config")
        return cls(data_root=os.path.join(data_home, "pydock"),
                   exec_root=os.path.join(private_dir(uid, env), "pydock"),
                   socket=user_socket(uid, env),
                   config_file=os.path.join(config_home, "pydock", "daemon.json"))


ROOT_PATHS = UserPaths(data_root="/var/lib/pydock", exec_root="/run/pydock", socket="/run/pydock/pydock.sock",
                       config_file="/etc/pydock/daemon.json")


def rootless() -> bool:
    """An engine started by any user but root runs rootless, as dockerd-rootless and Podman do."""
    return os.geteuid() != 0


def default_paths() -> UserPaths:
    """The system's paths for root, the user's own (XDG directories) otherwise."""
    return UserPaths.of(os.getuid(), os.environ) if rootless() else ROOT_PATHS


def _absolute(value: str | None) -> str:
    """An XDG variable counts only when absolute (the specification says to ignore relative ones)."""
    return value if value and os.path.isabs(value) else ""


def ensure_private_dir(path: str, uid: int) -> None:
    """Create `path` as a 0700 directory of `uid`, or check that an existing one is exactly that.

    Raises UnsafeDirectory when the path is a symlink, not a directory, owned by
    another user, or open to group or others: the socket and the runtime state
    below it would then be reachable by someone else.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if st.st_uid != uid:
        raise UnsafeDirectory(f"{path} belongs to uid {st.st_uid}, not to uid {uid}")
    if st.st_mode & 0o077:
        raise UnsafeDirectory(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}; want 700)")
