"""Docker's stdout/stderr stream framing (moby's stdcopy), for the daemon that writes it and the client that reads it.

Without a TTY, attach, logs and exec start send both output streams over one
connection: each chunk is an 8-byte header (stream id, three zero bytes, the
payload length as a big-endian uint32) followed by the payload. With a TTY the
stream is raw bytes. The media types name which one a hijacked connection carries.
The per-container monitor (engine/runtime/shim.py) frames the same way but runs
as a standalone script, so it keeps its own one-line copy.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxL")


def frame(stream_id: int, payload: bytes) -> bytes:
    """One frame of `payload` on stream STDOUT or STDERR."""
    return _HEADER.pack(stream_id, len(payload)) + payload


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            return buf
        buf += chunk
    return buf


def demux(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """(stream id, payload) for each frame `read` yields, until the stream ends (a cut frame ends it too)."""
    while True:
        header = _read_exact(read, _HEADER.size)
        if len(header) < _HEADER.size:
            return
        stream, length = _HEADER.unpack(header)
        payload = _read_exact(read, length)
        yield stream, payload
        if len(payload) < length:
            return


class Deframer:
    """Multiplexed chunks in, the payloads out (for a client that asked for a raw stream); keeps partial frames."""

    def __init__(self) -> None:
        self._buf = b""

    def __call__(self, data: bytes) -> bytes:
        self._buf += data
        out = []
        while len(self._buf) >= _HEADER.size:
            _stream, length = _HEADER.unpack_from(self._buf)
            if len(self._buf) < _HEADER.size + length:
                break
            out.append(self._buf[_HEADER.size:_HEADER.size + length])
            self._buf = self._buf[_HEADER.size + length:]
        return b"".join(out)


def as_stdout_frame(data: bytes) -> bytes:
    """Raw (TTY) output for a client that asked for a multiplexed stream: all of it is stdout."""
    return frame(STDOUT, data) if data else b""
