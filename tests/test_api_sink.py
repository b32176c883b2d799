"""engine.api.archive's response sink: an engine thread's writes reach the client, and nothing can stall the loop."""
from __future__ import annotations

import asyncio
import gc
import io
import threading
from typing import Any

import pytest

from engine.api.archive import _LoopSink


def test_a_sink_finalized_on_the_loop_thread_does_not_hang_the_loop() -> None:
    """A copy that failed leaves bytes in the BufferedWriter; when the garbage collector finalizes it on the
    loop's thread, its flush must fail at once (it used to wait for the loop, i.e. forever, freezing pydockd)."""
    async def main() -> None:
        sink = io.BufferedWriter(_LoopSink(Any, asyncio.get_running_loop()), 1 << 20)
        sink.write(b"left buffered by a copy whose client went away")
        del sink
        gc.collect()
        await asyncio.sleep(0)

    loop_thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    loop_thread.start()
    loop_thread.join(10)
    assert not loop_thread.is_alive(), "the loop waits on itself"


def test_a_write_after_the_client_left_fails_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        raw = _LoopSink(Any, loop)
        raw.broken = True
        with pytest.raises(BrokenPipeError):
            await loop.run_in_executor(None, raw.write, b"x")

    asyncio.run(main())
