"""Rootless mode: an engine run by an unprivileged user, root only inside user namespaces it holds.

paths.py the user's directories, idmap.py the namespace's ID map from
/etc/subuid and /etc/subgid, holder.py the namespace holder (pause.py) with
slirp4netns and how a daemon joins it, cgroups.py which cgroups (and so
which limits) systemd delegates to the user. pydockd enters rootless mode by
itself when not started by root (engine/pydockd.py).
"""
