"""Client side of container I/O: output streams, stdin forwarding, TTY raw mode."""
from __future__ import annotations

import codecs
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from pydock_cli.client import Client, Hijacked
from pydock_common.stdcopy import STDERR, demux


class Out:
    """A text stream (sys.stdout, io.StringIO, a notebook's stream) that also takes container bytes.

    Bytes go to the binary buffer when there is one, so program output passes
    through unchanged; otherwise they are decoded incrementally as UTF-8.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def write_bytes(self, data: bytes) -> None:
        with self._lock:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                self.stream.flush()
                buffer.write(data)
                buffer.flush()
            else:
                self.stream.write(self._decoder.decode(data))
                self.stream.flush()

    def isatty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())


def copy_output(read: Callable[[int], bytes], tty: bool, stdout: Out, stderr: Out) -> None:
    if tty:
        while True:
            data = read(65536)
            if not data:
                return
            stdout.write_bytes(data)
    for stream, payload in demux(read):
        (stderr if stream == STDERR else stdout).write_bytes(payload)


def _read_chunk(stdin: Any) -> bytes:
    """Whatever is available now (os.read on a real fd), so interactive input is not held back."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        return os.read(fd, 65536)
    data = stdin.read(65536)
    return data.encode() if isinstance(data, str) else data


def forward_stdin(stdin: Any, conn: Hijacked) -> threading.Thread:
    """Copies stdin to the container and half-closes on EOF, as `docker run -i` signals end of input."""

    def pump() -> None:
        try:
            while True:
                data = _read_chunk(stdin)
                if not data:
                    break
                conn.sock.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=pump, daemon=True, name="pydock-stdin")
    t.start()
    return t


def is_terminal(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def raw_terminal(stdin: Any) -> Iterator[None]:
    """Raw mode on the local terminal for `-it`, restored however the session ends."""
    import termios
    import tty
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(stream: Any) -> tuple[int, int]:
    size = os.get_terminal_size(stream.fileno())
    return size.lines, size.columns


@contextlib.contextmanager
def track_resize(client: Client, resize_path: str, stream: Any) -> Iterator[Callable[[], None]]:
    """Yields a function that sends the terminal size to `resize_path`; also sent on every SIGWINCH."""

    def resize() -> None:
        with contextlib.suppress(Exception):
            h, w = terminal_size(stream)
            client.post(resize_path, {"h": h, "w": w})

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGWINCH, lambda *_: resize())
    try:
        yield resize
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


def stream_session(client: Client, resize_path: str, conn: Hijacked, tty: bool, interactive: bool, stdin: Any,
                   stdout: Out, stderr: Out) -> None:
    """A hijacked session (run, start -a, attach, exec): stdin in, output out, raw local terminal for `-it`."""
    terminal = tty and interactive and is_terminal(stdin)
    if interactive:
        forward_stdin(stdin, conn)
    with contextlib.ExitStack() as stack:
        if terminal:
            stack.enter_context(raw_terminal(stdin))
            send_size = stack.enter_context(track_resize(client, resize_path, stdout.stream))
            send_size()
        copy_output(conn.sock.recv, tty, stdout, stderr)


def default_stdin(stdin: Any) -> Any:
    return sys.stdin if stdin is None else stdin
