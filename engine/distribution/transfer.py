"""Layer blobs in transit: a registry download read with resumption, hashed and decompressed as it streams."""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import IO, Any

import requests

from engine.distribution.plan import PullPlan
from engine.distribution.progress import Message, Throttle
from engine.distribution.registry import (
    CHUNK,
    RegistryError,
    RegistryUnreachable,
    Retrying,
)
from engine.errors import EngineError
from engine.image.service import decompress_to


class HashWriter:
    """A file wrapper that hashes what passes through, so nothing is read twice."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


class BlobReader:
    """A registry blob as a file to read from: hashed and size-checked as it streams.

    A dropped connection is resumed with a Range request (bounded retries);
    a registry that answers the range with the whole blob has its first
    bytes skipped, so the reader's consumer never notices.
    """

    def __init__(self, plan: PullPlan, digest: str, size: int, on_progress: Callable[[int], None],
                 stopped: Callable[[], bool]) -> None:
        self.plan, self.digest_want, self.total = plan, digest, size
        self.on_progress, self.stopped = on_progress, stopped
        self.h = hashlib.sha256()
        self.size = 0
        self.retry = Retrying()
        self.throttle = Throttle()
        self.resp: requests.Response | None = None
        self.chunks: Iterator[bytes] = iter(())
        self.pending = b""
        self.pos = 0  # of the first unread byte in `pending`
        self.skip = 0  # bytes of a restarted (non-range) answer that we already have
        self.done = False

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()

    def read(self, n: int = -1) -> bytes:
        if self.pos >= len(self.pending):
            self.pending, self.pos = self._next(), 0
        if self.pos == 0 and (n < 0 or n >= len(self.pending)):
            self.pos = len(self.pending)
            return self.pending
        end = len(self.pending) if n < 0 else self.pos + n
        out = self.pending[self.pos:end]
        self.pos += len(out)
        return out

    def peek(self) -> bytes:
        """Some of the next bytes, without consuming them."""
        if self.pos >= len(self.pending):
            self.pending, self.pos = self._next(), 0
        return self.pending[self.pos:]

    def drain(self) -> None:
        """Read to the end, so the digest covers the whole blob even if the decompressor stopped early."""
        self.pending, self.pos = b"", 0
        while self._next():
            pass

    def _next(self) -> bytes:
        while not self.done:
            if self.stopped():
                raise RegistryError("context canceled")
            try:
                if self.resp is None:
                    self._open()
                chunk = next(self.chunks, b"")
            except (requests.RequestException, RegistryUnreachable) as e:
                self._retry(e)
                continue
            if chunk:
                chunk = self._take(chunk)
                if chunk:
                    return chunk
                continue
            if self.total < 0 or self.size >= self.total:
                self._close()
                self.done = True
                self.on_progress(self.size)
            else:
                self._retry(RegistryError(f"short read: expected {self.total} bytes but got {self.size}"))
        return b""

    def _open(self) -> None:
        resp = self.plan.registry.open_blob(self.plan.ref.path, self.digest_want, self.size)
        self.resp, self.chunks = resp, resp.iter_content(CHUNK)
        self.skip = self.size if self.size and resp.status_code == 200 else 0  # no range support

    def _take(self, chunk: bytes) -> bytes:
        """Hash and count a received chunk; what a restarted answer repeats is dropped (b"" if all)."""
        if self.skip:
            cut = min(self.skip, len(chunk))
            self.skip -= cut
            chunk = chunk[cut:]
        self.h.update(chunk)
        self.size += len(chunk)
        if self.total >= 0 and self.size > self.total:
            raise RegistryError(f"filesystem layer verification failed for digest {self.digest_want}")
        if self.throttle.due():
            self.on_progress(self.size)
        return chunk

    def _retry(self, error: Exception) -> None:
        self._close()
        if self.stopped() or not self.retry.again():
            raise RegistryError(f"failed to download layer {self.digest_want}: {error}")

    def _close(self) -> None:
        if self.resp is not None:
            self.resp.close()
        self.resp, self.chunks = None, iter(())


def decompress(src: BlobReader, dst: HashWriter) -> str:
    """Decompress into `dst`; an invalid stream is returned as text, to be reported after the digest check.

    The format is sniffed, as dockerd does, not taken from the media type.
    """
    try:
        if src.peek()[:2] == b"\x1f\x8b":
            _gunzip(src, dst)
        else:
            decompress_to(src, dst)  # type: ignore[arg-type]
    except EngineError:
        raise  # the download itself failed
    except Exception as e:  # noqa: BLE001 -- each decompressor (zlib, bz2, lzma, zstd) has its own errors
        return str(e) or type(e).__name__
    return ""


def _gunzip(src: BlobReader, dst: HashWriter) -> None:
    """gzip members back to back (as Go's reader accepts them), in 1 MB steps.

    Most layers are gzip; GzipFile would read the stream 8 kB at a time,
    which costs a pull more than hashing does. Output is bounded per step
    so a small, highly compressible blob cannot balloon in memory.
    """
    member, fed, carry = zlib.decompressobj(31), False, b""
    while True:
        data = member.unconsumed_tail or carry or src.read(CHUNK)
        carry = b""
        if not data:
            break
        fed = True
        dst.write(member.decompress(data, CHUNK))
        if member.eof:
            carry = member.unused_data
            member, fed = zlib.decompressobj(31), False
    dst.write(member.flush())
    if fed:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


def either(a: threading.Event, b: threading.Event) -> Callable[[], bool]:
    """A stop test for the workers: the transfer's own stop or the client's cancel."""
    return lambda: a.is_set() or b.is_set()


def drain(job: Future[Any], reports: queue.Queue[Message], cancel: threading.Event) -> Iterator[Message]:
    """Forward the workers' progress until `job` is done; its error is raised here, in the streaming thread."""
    while True:
        try:
            yield reports.get(timeout=0.05)
            continue
        except queue.Empty:
            pass
        if cancel.is_set():
            raise RegistryError("context canceled")
        if job.done():
            job.result()  # re-raises the worker's error
            while not reports.empty():
                yield reports.get_nowait()
            return


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
