"""What /proc says of a process."""
from __future__ import annotations


def running(pid: int) -> bool:
    """Still running: not gone, and not a zombie waiting for its parent (or init) to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
