"""Reading an overlay upper directory: what was deleted, which directories hide their lower contents.

Kernel overlayfs and fuse-overlayfs record the same changes differently, and
`docker diff`, `docker commit` and every build step read upper directories
written by either (engine/linux/overlay.py):

- a deleted name: kernel overlayfs leaves a 0/0 character device of that
  name; fuse-overlayfs does too where it may mknod one (Linux 5.8 and later
  allow whiteouts in a user namespace), else an empty `.wh.NAME` file;
- an opaque directory (deleted, then made again): kernel overlayfs sets
  `trusted.overlay.opaque` (root) or `user.overlay.opaque` (in a user
  namespace) to "y"; fuse-overlayfs sets `trusted.overlay.opaque` as root,
  else `user.fuseoverlayfs.opaque`, and also leaves a `.wh..wh..opq` file in
  it (and, as measured with fuse-overlayfs 1.10 on Linux 6.18, a 0/0
  character device named `.wh..opq` beside it).

Names starting with `.wh.` are never content: OCI layers reserve them for
whiteouts, and fuse-overlayfs hides them from the merged view.
"""
from __future__ import annotations

import os
import stat

from pydock_common.untar import OPAQUE_MARKER, OPAQUE_XATTR, USER_OPAQUE_XATTR, WHITEOUT_PREFIX

FUSE_OPAQUE_XATTR = "user.fuseoverlayfs.opaque"
OPAQUE_XATTRS = (OPAQUE_XATTR, USER_OPAQUE_XATTR, FUSE_OPAQUE_XATTR)


def is_opaque(path: str) -> bool:
    """Whether the upper directory `path` hides whatever the layers below have at its place."""
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return os.path.lexists(os.path.join(path, OPAQUE_MARKER))


def deleted_name(name: str, st: os.stat_result) -> str | None:
    """The name an upper directory entry deletes from the layers below, None if it deletes nothing."""
    if name.startswith(WHITEOUT_PREFIX):  # fuse-overlayfs' file form; `.wh..wh..opq` is a mark, not a deletion
        rest = name[len(WHITEOUT_PREFIX):]
        return rest if stat.S_ISREG(st.st_mode) and rest and not rest.startswith(WHITEOUT_PREFIX) else None
    return name if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else None


def is_content(name: str) -> bool:
    """Whether an entry is a file of the container's rather than one of the overlay's marks."""
    return not name.startswith(WHITEOUT_PREFIX)
