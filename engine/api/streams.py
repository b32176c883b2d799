"""Streaming container routes: attach (connection hijack), wait and logs.

`hijack` and `pump` also serve exec start (api/exec.py)."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import socket
import struct
import termios
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from engine.api.base import ID, ApiHandler, Route, StreamOwner, bind, route, settle
from engine.api.parked import THREADS
from engine.container.logconfig import LogSpec


class ContainerStreams(Protocol):
    def get(self, ref: str) -> ContainerRecord: ...
    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
               allow: Callable[[ContainerRecord], None] | None = None) -> tuple[ContainerRecord, Attachment]: ...
    def begin_wait(self, ref: str, condition: str = "not-running") -> Waiter: ...
    def log_spec(self, c: ContainerRecord) -> LogSpec: ...


class Backend(StreamOwner, Protocol):
    @property
    def containers(self) -> ContainerStreams: ...


class _Handler(ApiHandler[Backend]):
    pass
from engine.container.core import Attachment, Waiter
from engine.container.exec import parse_detach_keys
from engine.container.logs import LogEntry, read_log_batches
from engine.container.record import ContainerRecord
from engine.errors import EngineError, InternalError, InvalidParameter, Unsupported
from engine.openstreams import OpenStreams, ShuttingDown
from engine.timeutil import parse_api_time
from pydock_common.stdcopy import MUX, RAW, STDERR, STDOUT, frame

HEAD_READ_POLLS = 250  # of 2 ms: at most half a second


async def hijack(handler: ApiHandler, content_type: str) -> tuple[socket.socket, bytes]:
    """Take the HTTP connection over for a raw stream, as Docker's attach and exec start do.

    Returns a blocking socket and what the client already sent after its
    request (stdin that must not be lost).
    """
    upgrade = "upgrade" in handler.request.headers.get("Connection", "").lower()
    status = "101 UPGRADED" if upgrade else "200 OK"
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            + ("Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "") + "\r\n")
    handler._auto_finish = False
    stream = handler.request.connection.detach()  # type: ignore[union-attr]
    await stream.write(head.encode())
    leftover = bytes(stream._read_buffer) if getattr(stream, "_read_buffer", None) else b""
    client = socket.socket(fileno=os.dup(stream.socket.fileno()))
    stream.close()
    client.setblocking(True)
    await _head_read(client)
    return client, leftover


async def _head_read(client: socket.socket) -> None:
    """Wait (briefly) until the client has read the response head.

    Clients such as docker-py read the head through a buffered reader, then
    read the stream from the raw socket: stream bytes that arrive together
    with the head would be swallowed by that buffer. On a unix socket the
    send queue counts bytes the peer has not read yet.
    """
    buf = bytearray(struct.calcsize("i"))
    for _ in range(HEAD_READ_POLLS):
        try:
            fcntl.ioctl(client.fileno(), termios.TIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        await asyncio.sleep(0.002)


class EscapeFilter:
    """Docker's detach keys (moby's escape proxy): input passes on until the key sequence arrives whole.

    Bytes that may start the sequence are held back until the next ones show
    whether it is the sequence (then the session detaches and they are never
    sent) or not (then they go on with the rest).
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""
        self.detached = False

    def __call__(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            self.held += bytes([byte])
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    self.detached = True
                    return bytes(out)
                continue
            out += self.held
            self.held = b""
        return bytes(out)


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q


def splice(client: socket.socket, peer: socket.socket, first: bytes = b"",
           before_close: Callable[[], None] | None = None, detach_keys: bytes = b"",
           outbound: Callable[[bytes], bytes] | None = None) -> None:
    """Copy bytes both ways until the peer's side ends, then close both.

    The client's EOF is passed on as a half-close, which is how `docker run
    -i` signals the end of piped stdin; `first` is sent to the peer before
    anything the client sends. `before_close` runs when the peer's output
    ended (not when the client left), before the client sees EOF. With
    `detach_keys`, that sequence in the client's input ends the session
    without passing anything on (the container runs on; its stdin is not
    closed). `outbound` transforms what the peer sends (a stream format change).
    """
    escape = EscapeFilter(detach_keys) if detach_keys else None

    def inbound() -> None:
        try:
            if first:
                peer.sendall(escape(first) if escape else first)
            while (escape is None or not escape.detached) and (data := client.recv(65536)):
                data = escape(data) if escape else data
                if data:
                    peer.sendall(data)
        except OSError:
            pass
        if escape is not None and escape.detached:
            for s in (client, peer):  # both ways end now; the output loop sees it
                _shut(s)
            return
        try:
            peer.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    inbound_ended = threading.Event()

    def inbound_then_end() -> None:
        try:
            inbound()
        finally:
            inbound_ended.set()

    THREADS.run(inbound_then_end, name="splice-in")
    ended = False
    try:
        while data := peer.recv(65536):
            client.sendall(outbound(data) if outbound else data)
        ended = not (escape is not None and escape.detached)
    except OSError:
        pass
    finally:
        if ended and before_close is not None:
            before_close()
        for s in (client, peer):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        inbound_ended.wait(timeout=5)
        client.close()
        peer.close()


def pump(client: socket.socket, att: Attachment, leftover: bytes = b"",
         before_close: Callable[[], None] | None = None, detach_keys: bytes = b"",
         outbound: Callable[[bytes], bytes] | None = None) -> None:
    """Splice a hijacked client connection with a shim attach connection until output ends.

    The shim already speaks Docker's stream format, so bytes pass through untouched (unless the client asked
    for the other format: `outbound`). `detach_keys` apply to a TTY session's input, as in dockerd.
    """
    # An empty read here would not mean the client left: the docker CLI
    # half-closes at once when it attaches no stdin. A client that really
    # left is noticed when output to it fails, or when the container is removed.
    att.ready.wait()
    if att.sock is None:
        client.close()
        return
    splice(client, att.sock, leftover if att.stdin else b"", before_close,
           detach_keys if att.stdin and att.tty else b"", outbound)


class Hangup:
    """Ends a hijacked session from outside: shutting its sockets wakes both directions of the splice."""

    def __init__(self, client: socket.socket) -> None:
        self._socks = [client]
        self._lock = threading.Lock()
        self._fired = False

    def add(self, sock: socket.socket | None) -> None:
        """Include a socket that exists only later (the shim's); shut at once if the hang-up already came."""
        if sock is None:
            return
        with self._lock:
            self._socks.append(sock)
            fired = self._fired
        if fired:
            _shut(sock)

    def __call__(self) -> None:
        with self._lock:
            self._fired = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def run_session(streams: OpenStreams, client: socket.socket, serve: Callable[[Hangup], None]) -> None:
    """Serve a hijacked connection as one of the engine's open streams, so shutting down ends it first."""
    hangup = Hangup(client)
    try:
        with streams.track(threading.Event(), hangup):
            serve(hangup)
    except ShuttingDown:
        client.close()


def log_frames(entries: Iterable[LogEntry], tty: bool, timestamps: bool = False) -> Iterator[bytes]:
    """Log entries in the stream format of a container with or without a TTY."""
    for stream, payload, ts in entries:
        if timestamps:
            payload = ts + b" " + payload
        yield payload if tty else frame(STDOUT if stream == b"stdout" else STDERR, payload)


def log_chunks(batches: Iterable[list[LogEntry]], tty: bool, timestamps: bool) -> Iterator[bytes]:
    """One write per batch the reader yields: a write per line costs more than reading it."""
    for batch in batches:
        yield b"".join(log_frames(batch, tty, timestamps))


class AttachHandler(_Handler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        stdout, stderr = self.q_bool("stdout"), self.q_bool("stderr")
        keys = self.q_str("detachKeys")
        try:
            detach_keys = parse_detach_keys(keys) if keys else DEFAULT_DETACH_KEYS
        except EngineError:
            raise InvalidParameter(f"Invalid detach keys ({keys}) provided") from None
        stream, stdin = self.q_bool("stream"), self.q_bool("stdin")

        def allow(c: ContainerRecord) -> None:
            self.policy.check_container_use(lambda: c.host_config)

        def attach() -> tuple[ContainerRecord, Attachment | None]:  # one trip to the pool, on `docker run`'s path
            if stream:
                return self.engine.containers.attach(ref, stdin, stdout, stderr, allow)
            c = self.engine.containers.get(ref)
            allow(c)
            return c, None

        c, att = await self.run(attach)
        tty = c.config.tty
        client, leftover = await hijack(self, RAW if tty else MUX)
        log_path = self.engine.containers.log_spec(c).path
        history = log_chunks(read_log_batches(log_path, stdout=stdout, stderr=stderr), tty, False) \
            if self.q_bool("logs") and log_path else iter(())
        serve = functools.partial(self._serve, client, att, leftover, history, detach_keys)
        THREADS.run(run_session, self.engine.streams, client, serve, name="attach")

    @staticmethod
    def _serve(client: socket.socket, att: Attachment | None, leftover: bytes, history: Iterator[bytes],
               detach_keys: bytes, hangup: Hangup) -> None:
        """Replay the log (`logs=1`), then the live streams (`stream=1`).

        The live connection is made first, so output racing the replay may
        show twice but is never lost.
        """
        if att is not None:
            att.ready.wait()
            hangup.add(att.sock)
        try:
            for chunk in history:
                client.sendall(chunk)
        except OSError:
            pass
        if att is None:
            client.close()
        else:
            pump(client, att, leftover, detach_keys=detach_keys)


class WaitHandler(_Handler):
    """The answer comes from the exit or removal that meets the wait, as a call onto the loop (Waiter.on_done):
    no thread waits per client, and the reply is one handoff from the exit's thread."""

    _answered: Callable[[dict[str, Any] | None, BaseException | None], None] | None = None

    async def post(self, version: str | None = None, ref: str = "") -> None:
        waiter = await self.run(self.engine.containers.begin_wait, ref, self.q_str("condition", "not-running"))
        cancel = self._stream_cancel = threading.Event()
        self.set_header("Content-Type", "application/json")
        await self.flush()  # tells the client its wait is registered
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()

        def answered(result: dict[str, Any] | None, error: BaseException | None = None) -> None:
            # called from the exit's thread, under the service's lock: it must neither block nor raise
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to answer
                loop.call_soon_threadsafe(settle, answer, result, error)

        self._answered = answered
        try:
            # the engine's shutdown, like the client's leaving (on_connection_close), ends the wait
            with self.engine.streams.track(cancel, lambda: answered(None, InternalError("wait cancelled"))):
                withdraw = waiter.on_done(answered)
                try:
                    result = await answer
                finally:
                    withdraw()
        except EngineError as e:  # reported in-band, as Docker does once headers are sent
            result = {"StatusCode": -1, "Error": {"Message": str(e)}}
        self.finish(json.dumps(result) + "\n")

    def on_connection_close(self) -> None:
        if self._answered is not None:
            self._answered(None, InternalError("wait cancelled"))
        super().on_connection_close()

class LogsHandler(_Handler):
    async def get(self, version: str | None = None, ref: str = "") -> None:
        stdout, stderr = self.q_bool("stdout"), self.q_bool("stderr")
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tail_arg = self.q_str("tail", "all")
        if tail_arg == "all":
            tail = -1
        else:
            try:
                tail = int(tail_arg)
            except ValueError:
                raise InvalidParameter(f"invalid value for tail: {tail_arg[:20]!r}") from None
        since = self.q_str("since")
        until = self.q_str("until")
        since_ns = parse_api_time(since) if since else 0
        until_ns = parse_api_time(until) if until else 0
        follow = self.q_bool("follow")
        timestamps = self.q_bool("timestamps")
        c = await self.run(self.engine.containers.get, ref)
        tty = c.config.tty
        cid = c.id
        containers = self.engine.containers
        log_path = containers.log_spec(c).path
        if not log_path:
            raise Unsupported("configured logging driver does not support reading")

        def is_running() -> bool:
            try:
                return containers.get(cid).state.running
            except EngineError:
                return False

        def gen(cancel: threading.Event) -> Iterator[bytes]:
            return log_chunks(read_log_batches(log_path, stdout=stdout, stderr=stderr, since_ns=since_ns,
                                               until_ns=until_ns, tail=tail, follow=follow,
                                               is_running=is_running, cancel=cancel), tty, timestamps)

        await self.send_stream(gen, RAW if tty else MUX)


ROUTES: list[Route] = [
    (route(rf"/containers/{ID}/attach"), AttachHandler),
    (route(rf"/containers/{ID}/wait"), WaitHandler),
    (route(rf"/containers/{ID}/logs"), LogsHandler),
]


def routes(backend: Backend) -> list[tuple[str, type[ApiHandler[Any]], Backend]]:
    return bind(ROUTES, backend)
