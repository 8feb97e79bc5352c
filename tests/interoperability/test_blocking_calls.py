"""The NGSI-LD routes' hop to blocking code: off the event loop, with the caller's context."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from cityos_interoperability.ngsild.services import run_in_threadpool

CORRELATION = contextvars.ContextVar[str]("correlation", default="none")


def where(label: str, *, suffix: str = "") -> tuple[str, str, str]:
    return threading.current_thread().name, CORRELATION.get(), label + suffix


def test_a_blocking_call_runs_in_a_worker_thread_with_the_callers_context() -> None:
    async def request() -> tuple[str, str, str]:
        CORRELATION.set("req-42")
        return await run_in_threadpool(where, "speed", suffix="!")

    thread, correlation, result = asyncio.run(request())
    assert thread != threading.current_thread().name
    assert thread.startswith("ngsild-blocking")
    assert (correlation, result) == ("req-42", "speed!")


def test_a_blocking_calls_error_reaches_the_route() -> None:
    def refuse() -> None:
        raise LookupError("no such entity")

    with pytest.raises(LookupError, match="no such entity"):
        asyncio.run(run_in_threadpool(refuse))


def test_concurrent_blocking_calls_do_not_wait_for_each_other() -> None:
    barrier = threading.Barrier(4, timeout=10)

    async def requests() -> list[int]:
        # Each call waits until all four are running: they only finish if run in parallel.
        return await asyncio.gather(*(run_in_threadpool(barrier.wait) for _ in range(4)))

    assert sorted(asyncio.run(requests())) == [0, 1, 2, 3]
