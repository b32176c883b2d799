"""Streaming container routes: attach (connection hijack), wait and logs."""
from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Iterator

from ..containers import Attachment
from ..errors import EngineError, InvalidParameter
from ..logs import read_logs
from ..timeutil import parse_api_time
from .base import ID, ApiHandler, route

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: str, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(payload)) + payload


def pump(client: socket.socket, att: Attachment) -> None:
    """Splice a hijacked client connection and a shim attach connection until output ends.

    The shim already speaks Docker's stream format, so bytes pass through
    untouched. Client EOF is forwarded as a half-close, which is how `docker
    run -i` signals the end of piped stdin.
    """
    # An empty read here would not mean the client left: the docker CLI
    # half-closes at once when it attaches no stdin. A client that really
    # left is noticed when output to it fails, or when the container is removed.
    att.ready.wait()
    shim = att.sock
    if shim is None:
        client.close()
        return

    def upstream() -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                shim.sendall(data)
        except OSError:
            pass
        try:
            shim.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=upstream, daemon=True, name="attach-in")
    t.start()
    try:
        while True:
            data = shim.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        for s in (client, shim):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        t.join(timeout=5)
        client.close()
        shim.close()


class AttachHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        if self.q_bool("logs") and not self.q_bool("stream"):
            raise InvalidParameter("attach with logs and without stream is not supported; use the logs endpoint")
        att = await self.run(self.engine.containers.attach, ref, self.q_bool("stdin"),
                             self.q_bool("stdout"), self.q_bool("stderr"))
        upgrade = "upgrade" in self.request.headers.get("Connection", "").lower()
        status = "101 UPGRADED" if upgrade else "200 OK"
        head = (f"HTTP/1.1 {status}\r\nContent-Type: {RAW if att.tty else MUX}\r\n"
                + ("Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "") + "\r\n")
        self._auto_finish = False
        stream = self.request.connection.detach()  # type: ignore[union-attr]
        await stream.write(head.encode())
        leftover = bytes(stream._read_buffer) if getattr(stream, "_read_buffer", None) else b""
        client = socket.socket(fileno=os.dup(stream.socket.fileno()))
        stream.close()
        client.setblocking(True)
        if leftover and att.stdin:
            threading.Thread(target=self._pump_with_leftover, args=(client, att, leftover), daemon=True).start()
        else:
            threading.Thread(target=pump, args=(client, att), daemon=True, name="attach").start()

    @staticmethod
    def _pump_with_leftover(client: socket.socket, att: Attachment, leftover: bytes) -> None:
        att.ready.wait()
        if att.sock is not None:
            att.sock.sendall(leftover)
        pump(client, att)


class WaitHandler(ApiHandler):
    async def post(self, version: str | None = None, ref: str = "") -> None:
        wait = await self.run(self.engine.containers.begin_wait, ref, self.q_str("condition", "not-running"))
        cancel = self._stream_cancel = threading.Event()
        self.set_header("Content-Type", "application/json")
        await self.flush()  # tells the client its wait is registered
        try:
            result = await self.in_thread(wait, cancel)
        except EngineError as e:  # reported in-band, as Docker does once headers are sent
            result = {"StatusCode": -1, "Error": {"Message": str(e)}}
        self.finish(json.dumps(result) + "\n")

class LogsHandler(ApiHandler):
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
        tty = c["Config"]["Tty"]
        cid = c["Id"]
        containers = self.engine.containers

        def is_running() -> bool:
            try:
                return bool(containers.get(cid)["State"]["Running"])
            except EngineError:
                return False

        def gen(cancel: threading.Event) -> Iterator[bytes]:
            for stream, payload, ts in read_logs(c["LogPath"], stdout=stdout, stderr=stderr, since_ns=since_ns,
                                                 until_ns=until_ns, tail=tail, follow=follow,
                                                 is_running=is_running, cancel=cancel):
                if timestamps:
                    payload = ts.encode() + b" " + payload
                yield payload if tty else frame(stream, payload)

        await self.send_stream(gen, RAW if tty else MUX)


ROUTES = [
    (route(rf"/containers/{ID}/attach"), AttachHandler),
    (route(rf"/containers/{ID}/wait"), WaitHandler),
    (route(rf"/containers/{ID}/logs"), LogsHandler),
]
