"""Request bodies that can be large (image tarballs, build contexts, archives).

They are spooled to a temporary file as they arrive instead of being held in
memory, and handed to the engine as an open file.
"""
from __future__ import annotations

import os
import tempfile
from typing import IO, Protocol, TypeVar

import tornado.web

from engine.api.base import ApiHandler, StreamOwner
from engine.config import EngineConfig


class Spooling(StreamOwner, Protocol):
    """Uploads spool to the engine's temp directory, on the data root's filesystem."""

    @property
    def cfg(self) -> EngineConfig: ...


U = TypeVar("U", bound=Spooling)

MAX_UPLOAD = 1 << 40


@tornado.web.stream_request_body
class UploadHandler(ApiHandler[U]):
    upload: IO[bytes]

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.request.connection.set_max_body_size(MAX_UPLOAD)  # type: ignore[union-attr]
        # lives across data_received calls; on_finish closes it
        self.upload = tempfile.TemporaryFile(dir=self.engine.cfg.tmp_dir, prefix="upload-")  # noqa: SIM115

    def data_received(self, chunk: bytes) -> None:
        self.upload.write(chunk)

    def body_file(self) -> IO[bytes]:
        self.upload.flush()
        self.upload.seek(0)
        return self.upload

    def on_finish(self) -> None:
        upload = getattr(self, "upload", None)
        if upload is not None:
            upload.close()

    def body_size(self) -> int:
        return os.fstat(self.upload.fileno()).st_size
