"""Attach: a client's connection to a container's stdio, made now or at the container's next start."""
from __future__ import annotations

from collections.abc import Callable

from engine.container.core import Attachment, ContainerCore
from engine.container.record import ContainerID, ContainerRecord


class Attaching(ContainerCore):
    # ---- attach -------------------------------------------------------
    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
               allow: Callable[[ContainerRecord], None] | None = None) -> tuple[ContainerRecord, Attachment]:
        """Prepare an attach; the caller waits on `ready`, which fires now or at next start. `allow` checks the
        record first (raising to refuse), so a caller that needs the record loads it once, here."""
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            if allow is not None:
                allow(c)
            cfg = c.config
            att = Attachment(stdin=stdin and cfg.open_stdin, stdout=stdout, stderr=stderr,
                             close_stdin=cfg.stdin_once, tty=cfg.tty)
            if c.state.running:
                self._connect_attachment(cid, att)
            else:
                self._pending.setdefault(cid, []).append(att)
        self._event(c, "attach")
        return c, att

    def detach_pending(self, ref: str, att: Attachment) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            if att in self._pending.get(cid, []):
                self._pending[cid].remove(att)

    def _connect_attachment(self, cid: ContainerID, att: Attachment) -> None:
        try:
            att.sock = self.runtime.attach(cid, stdin=att.stdin, stdout=att.stdout, stderr=att.stderr,
                                           close_stdin=att.close_stdin)
        except OSError as e:
            att.error = f"container {cid[:12]} is not running: {e}"
        att.ready.set()
