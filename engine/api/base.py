"""Shared plumbing for Docker Engine API handlers.

Handlers parse and validate the request, then call one engine method off the
IO loop. Errors become Docker's `{"message": ...}` bodies with the status
engine/api/errors.py gives the error's kind. The Jupyter extension reuses
these classes behind its own authentication by mixing them into its handler
base (see `make_routes`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

import tornado.iostream
import tornado.web

from engine import wire
from engine.api.errors import message_of, status_of, write_error
from engine.api.parked import THREADS
from engine.errors import EngineError, InvalidParameter
from engine.filters import Filters
from engine.hostpolicy import OPEN, HostPolicy
from engine.openstreams import OpenStreams
from pydock_common.apiversion import API_VERSION, MIN_API_VERSION, version_tuple

T = TypeVar("T")
R = TypeVar("R")  # a request record type


class StreamOwner(Protocol):
    """What every router's backend offers the handler base: the registry of open streams to end at shutdown."""

    @property
    def streams(self) -> OpenStreams: ...


B = TypeVar("B", bound=StreamOwner)

# Short engine calls share a bounded pool; streams (logs -f, wait, events,
# attach) each get a thread of their own (parked.py) so they can never starve short calls.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="pydock-api")

TRUE = {"1", "true", "True", "yes"}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def parse_json(text: str | bytes, what: str) -> Any:
    """json.loads with every parse failure as a 400 (Python also raises ValueError for
    over-long integers and RecursionError for deep nesting, not only JSONDecodeError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidParameter(f"{what}: {e}") from None


def settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete `fut` on its loop unless the handler already gave up on it."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class ApiHandler(tornado.web.RequestHandler, Generic[B]):
    """A Docker API handler whose backend (`engine`) is the Protocol its router module declares.

    A router never sees the Engine class: it names the small set of services
    and methods it calls, so an in-process test needs only those.
    """

    engine: B
    policy: HostPolicy
    _stream_cancel: threading.Event | None = None

    def initialize(self, engine: B, policy: HostPolicy = OPEN) -> None:
        self.engine = engine
        self.policy = policy

    # ---- headers, versions, errors ----------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Api-Version", API_VERSION)
        self.set_header("Docker-Experimental", "false")
        self.set_header("Ostype", "linux")
        self.set_header("Server", "pydock")

    def prepare(self) -> None:
        version = self.path_kwargs.get("version")
        if version:
            try:
                vt = version_tuple(version)
            except ValueError:
                raise InvalidParameter(f"invalid API version {version[:20]}") from None
            if vt > version_tuple(API_VERSION):
                raise InvalidParameter(f"client version {version} is too new. Maximum supported API version is "
                                       f"{API_VERSION}")
            if vt < version_tuple(MIN_API_VERSION):
                raise InvalidParameter(f"client version {version} is too old. Minimum supported API version is "
                                       f"{MIN_API_VERSION}, please upgrade your client to a newer version")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        write_error(self, status_of(exc, status_code), message_of(exc, self._reason))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, EngineError):
            if self._finished:
                return
            if self._headers_written:
                # a stream already started: all we can do is end it
                self.request.connection.close()  # type: ignore[union-attr]
                return
            self.send_error(status_of(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, EngineError) and status_of(value) < 500:
            return
        super().log_exception(typ, value, tb)

    # ---- parameters --------------------------------------------------
    def query(self, name: str, default: str | None = None) -> str | None:
        """The first value of a repeated parameter, as Go's FormValue (and so dockerd) reads it: as sent
        (tornado's own getters strip spaces and blank out control characters, so `?name=%00` would pass)."""
        values = self.request.query_arguments.get(name)
        return values[0].decode(errors="replace") if values else default

    def q_bool(self, name: str, default: bool = False) -> bool:
        v = self.query(name)
        if v is None or v == "":
            return default
        return v in TRUE

    def q_int(self, name: str, default: int | None = None) -> int | None:
        v = self.query(name)
        if v is None or v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise InvalidParameter(f"invalid value for {name}: {v[:50]!r}") from None
        if not INT64_MIN <= n <= INT64_MAX:  # Go's strconv.Atoi, as dockerd parses these
            raise InvalidParameter(f'invalid value for {name}: strconv.Atoi: parsing "{v[:50]}": value out of range')
        return n

    def q_str(self, name: str, default: str = "") -> str:
        return self.query(name, default) or default

    def q_filters(self) -> Filters:
        """The `filters` query (either of Docker's JSON forms) as the one Filters type every backend takes."""
        return Filters.parse(self.query("filters", "") or "")

    def json_body(self, required: bool = True) -> Any:
        body = self.request.body
        if not body:
            if required:
                raise InvalidParameter("invalid JSON: got EOF while reading request body")
            return {}
        return parse_json(body, "invalid JSON")

    def decoded(self, cls: type[R], required: bool = True) -> R:
        """The JSON body decoded into the Engine API record dockerd would decode it into (see engine/wire.py)."""
        return wire.decode(cls, self.json_body(required))

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data) + "\n")

    # ---- running engine code ----------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))

    async def stream_thread(self, gen: Callable[[threading.Event], Iterator[T]],
                            cancel: threading.Event) -> AsyncIterator[T]:
        """Run a blocking generator in its own thread, yielding its items on the loop.

        The queue is bounded so a slow client applies back-pressure; the worker
        gives up as soon as `cancel` is set, so a client that leaves while the
        queue is full does not strand the thread (and the file it reads).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        done = object()

        def put(item: Any) -> bool:
            fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while True:
                try:
                    fut.result(timeout=0.5)
                    return True
                except concurrent.futures.TimeoutError:
                    if cancel.is_set():
                        fut.cancel()
                        return False

        def worker() -> None:
            # tracked until the thread ends, so the engine closes its store only after this stream is gone
            try:
                with self.engine.streams.track(cancel):
                    for item in gen(cancel):
                        if cancel.is_set() or not put(item):
                            return
                    put(done)
            except BaseException as e:  # noqa: BLE001 - forwarded to the handler, which re-raises it
                put(e)

        THREADS.run(worker, name="pydock-stream")
        while True:
            item = await queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def send_stream(self, gen: Callable[[threading.Event], Iterator[bytes]], content_type: str,
                          in_band_error: Callable[[Exception], bytes] | None = None) -> None:
        """Answer with the chunks a blocking generator yields, until it ends or the client leaves.

        Once the status line is out an error can only be reported inside the
        stream; `in_band_error` formats it the way the endpoint's clients expect.
        """
        cancel = self._stream_cancel = threading.Event()
        self.set_status(200)
        self.set_header("Content-Type", content_type)
        try:
            await self.flush()
            async for chunk in self.stream_thread(gen, cancel):
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return
        except Exception as e:
            if in_band_error is None:
                raise
            self.write(in_band_error(e))
        finally:
            cancel.set()
        self.finish()

    def on_connection_close(self) -> None:
        if self._stream_cancel is not None:
            self._stream_cancel.set()
        super().on_connection_close()

    async def in_thread(self, fn: Callable[..., T], *args: Any, stream: threading.Event | None = None) -> T:
        """Like `run`, for calls that may block indefinitely (waits).

        With `stream` (its cancel event) the call counts as an open stream that
        the engine's shutdown cancels and waits for.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def worker() -> None:
            try:
                with self.engine.streams.track(stream) if stream is not None else contextlib.nullcontext():
                    res = fn(*args)
                loop.call_soon_threadsafe(settle, fut, res, None)
            except BaseException as e:  # noqa: BLE001 - re-raised by the awaiting handler
                loop.call_soon_threadsafe(settle, fut, None, e)

        THREADS.run(worker, name="pydock-wait")
        return await fut


Route = tuple[str, type[ApiHandler[Any]]]


def bind(table: Sequence[tuple[str, type[ApiHandler[B]]]], backend: B) -> list[tuple[str, type[ApiHandler[Any]], B]]:
    """A router's route table with the backend its handlers get."""
    return [(pattern, handler, backend) for pattern, handler in table]


def route(path: str) -> str:
    """Docker routes work with and without the `/vX.Y` prefix."""
    return r"(?:/v(?P<version>[0-9.]+))?" + path


ID = r"(?P<ref>[^/]+)"
NAME = r"(?P<ref>.+?)"  # image names contain slashes
