"""The group commit's queue (ADR 0052), without a database: who leads, what goes together."""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from cityos_knowledge.context import group_commit
from cityos_knowledge.context.group_commit import GroupCommit


class Recorder:
    """An ``apply`` that records its batches; the first batch waits until it is released."""

    def __init__(self, fail: Callable[[str], BaseException | None] = lambda item: None) -> None:
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self._fail = fail

    def __call__(self, items: Sequence[str]) -> list[BaseException | None]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release_first.wait(30)
        return [self._fail(item) for item in items]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.001)


def queued_up(group: GroupCommit[str], count: int) -> bool:
    return group.waiting == count


def submit_in_threads(
    group: GroupCommit[str], items: list[str], errors: dict[str, BaseException]
) -> list[threading.Thread]:
    def submit(item: str) -> None:
        try:
            group.submit(item)
        except Exception as exc:
            errors[item] = exc

    threads = [threading.Thread(target=submit, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads


def test_a_caller_alone_is_applied_at_once_as_a_batch_of_one() -> None:
    batches: list[list[str]] = []

    def apply(items: Sequence[str]) -> list[BaseException | None]:
        batches.append(list(items))
        return [None] * len(items)

    group = GroupCommit(apply)
    group.submit("a")
    group.submit("b")
    assert batches == [["a"], ["b"]]


def test_callers_arriving_during_a_batch_go_together_in_the_next_one_in_their_order() -> None:
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    errors: dict[str, BaseException] = {}
    first = submit_in_threads(group, ["first"], errors)
    assert recorder.first_started.wait(30)
    others = []
    for number in range(6):  # one at a time, so the queue's order is known
        others += submit_in_threads(group, [f"item-{number}"], errors)
        wait_for(functools.partial(queued_up, group, number + 1))
    recorder.release_first.set()
    for thread in first + others:
        thread.join(30)
    assert recorder.batches == [["first"], [f"item-{number}" for number in range(6)]]
    assert errors == {}
    assert group.waiting == 0


def test_a_batch_is_bounded_and_the_rest_follows() -> None:
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder, max_batch=2)
    errors: dict[str, BaseException] = {}
    threads = submit_in_threads(group, ["first"], errors)
    assert recorder.first_started.wait(30)
    threads += submit_in_threads(group, ["b", "c", "d", "e", "f"], errors)
    wait_for(lambda: group.waiting == 5)
    recorder.release_first.set()
    for thread in threads:
        thread.join(30)
    assert [len(batch) for batch in recorder.batches] == [1, 2, 2, 1]
    assert sorted(item for batch in recorder.batches for item in batch) == [
        "b", "c", "d", "e", "f", "first",
    ]  # fmt: skip
    assert errors == {}


def test_each_caller_gets_its_own_outcome() -> None:
    recorder = Recorder(lambda item: ValueError(item) if item == "bad" else None)
    group: GroupCommit[str] = GroupCommit(recorder)
    errors: dict[str, BaseException] = {}
    threads = submit_in_threads(group, ["first"], errors)
    assert recorder.first_started.wait(30)
    threads += submit_in_threads(group, ["good", "bad", "fine"], errors)
    wait_for(lambda: group.waiting == 3)
    recorder.release_first.set()
    for thread in threads:
        thread.join(30)
    assert len(recorder.batches) == 2
    assert list(errors) == ["bad"]
    assert str(errors["bad"]) == "bad"


def test_a_failing_batch_fails_its_callers_and_the_next_caller_still_leads() -> None:
    calls: list[list[str]] = []

    def apply(items: Sequence[str]) -> list[BaseException | None]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return [None] * len(items)

    group = GroupCommit(apply)
    with pytest.raises(RuntimeError, match="went away"):
        group.submit("a")
    group.submit("b")
    assert calls == [["a"], ["b"]]


def test_a_wrong_number_of_outcomes_is_an_error_not_a_silent_success() -> None:
    group: GroupCommit[str] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for a batch of 1"):
        group.submit("a")


def test_a_caller_interrupted_while_queued_leaves_the_queue_and_the_others_go_on() -> None:
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    errors: dict[str, BaseException] = {}
    threads = submit_in_threads(group, ["first"], errors)
    assert recorder.first_started.wait(30)

    def interrupt_the_main_thread_once_two_wait() -> None:
        threads.extend(submit_in_threads(group, ["after"], errors))
        wait_for(functools.partial(queued_up, group, 2))
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    helper = threading.Thread(target=interrupt_the_main_thread_once_two_wait)
    # Python's own SIGINT handler, whatever an earlier test in this process left installed
    # (an event loop run in the main thread replaces it while it runs).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        helper.start()
        with pytest.raises(KeyboardInterrupt):
            group.submit("interrupted")  # queued behind "first", in the main thread
    finally:
        signal.signal(signal.SIGINT, previous)
    helper.join(30)
    recorder.release_first.set()
    for thread in threads:
        thread.join(30)
    assert recorder.batches == [["first"], ["after"]]
    assert errors == {}
    group.submit("later")  # the lead was not lost
    assert recorder.batches[-1] == ["later"]


# -- coroutine callers (ADR 0055) ----------------------------------------------------------


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the callbacks scheduled on it from other threads."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled_from_threads = 0

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        self.scheduled_from_threads += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def run_on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def eventually(condition: Callable[[], bool]) -> None:
    """:func:`wait_for` without blocking the loop (the callers being waited for run on it)."""
    for _ in range(30_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


class ThreadRecorder(Recorder):
    """A :class:`Recorder` that also notes which thread applied each batch."""

    def __init__(self, fail: Callable[[str], BaseException | None] = lambda item: None) -> None:
        super().__init__(fail)
        self.threads: list[threading.Thread] = []

    def __call__(self, items: Sequence[str]) -> list[BaseException | None]:
        self.threads.append(threading.current_thread())
        return super().__call__(items)


class Gate:
    """An ``apply`` whose batches each wait until released, counting those applied at once."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Semaphore(0)
        self.releases: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def __call__(self, items: Sequence[str]) -> list[BaseException | None]:
        release = threading.Event()
        with self._lock:
            self.batches.append(list(items))
            self.releases[items[0]] = release
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.release()
        assert release.wait(30)
        with self._lock:
            self.running -= 1
        return [None] * len(items)


def test_with_two_in_flight_a_batch_starts_while_the_one_before_it_is_applied() -> None:
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate, in_flight=2)
    errors: dict[str, BaseException] = {}
    threads = submit_in_threads(group, ["first"], errors)
    assert gate.started.acquire(timeout=30)
    threads += submit_in_threads(group, ["second"], errors)
    # "first" is still being applied: "second" is a batch of its own, led at once.
    assert gate.started.acquire(timeout=30)
    assert gate.running == 2
    # Both leaders busy, two in flight: what comes now waits, together, for one to end.
    threads += submit_in_threads(group, ["a", "b"], errors)
    wait_for(functools.partial(queued_up, group, 2))
    assert not gate.started.acquire(timeout=0.2)
    gate.releases["second"].set()
    assert gate.started.acquire(timeout=30)
    assert sorted(gate.batches[2]) == ["a", "b"]
    gate.releases["first"].set()
    gate.releases[gate.batches[2][0]].set()
    for thread in threads:
        thread.join(30)
    assert errors == {}
    assert gate.batches[:2] == [["first"], ["second"]]
    assert gate.most_running == 2


def test_with_two_in_flight_many_callers_are_each_applied_once_two_batches_at_most() -> None:
    applied: list[str] = []
    running = [0, 0]  # now, most
    lock = threading.Lock()

    def apply(items: Sequence[str]) -> list[BaseException | None]:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.002)  # a database round trip, during which others queue
        with lock:
            running[0] -= 1
            applied.extend(items)
        return [None] * len(items)

    group: GroupCommit[str] = GroupCommit(apply, in_flight=2)
    loop = asyncio.new_event_loop()

    async def coroutines(prefix: str) -> None:
        for number in range(50):
            await group.submit_async(f"{prefix}{number}")

    def blocking(prefix: str) -> None:
        for number in range(50):
            group.submit(f"{prefix}{number}")

    async def scenario() -> None:
        workers = [threading.Thread(target=blocking, args=(f"t{n}-",)) for n in range(3)]
        for worker in workers:
            worker.start()
        await asyncio.gather(*(coroutines(f"c{n}-") for n in range(5)))
        for worker in workers:
            await asyncio.to_thread(worker.join, 30)

    run_on_loop(loop, scenario())
    group.close()
    expected = [f"{kind}{n}-{number}" for kind, count in (("t", 3), ("c", 5))
                for n in range(count) for number in range(50)]  # fmt: skip
    assert sorted(applied) == sorted(expected)
    assert running[1] == 2  # two batches did run at once, never more
    assert group.waiting == 0


def test_a_busy_group_commit_lingers_for_more_and_a_quiet_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The linger is a sleep of the leader: here the sleep records itself and, the first
    # time, lets two more callers queue up meanwhile (as they would arrive during it).
    batches: list[list[str]] = []
    group: GroupCommit[str] = GroupCommit(
        lambda items: batches.append(list(items)) or [None] * len(items), linger=0.0005
    )
    slept: list[float] = []
    errors: dict[str, BaseException] = {}
    late: list[threading.Thread] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            late.extend(submit_in_threads(group, ["late-1", "late-2"], errors))
            wait_for(functools.partial(queued_up, group, 3))

    monkeypatch.setattr(group_commit.time, "sleep", sleep)
    group.submit("quiet")  # nothing ran before: led at once, no linger
    assert slept == [] and batches == [["quiet"]]
    group.submit("busy")  # a batch ended just now: lingers, and the late ones join it
    for thread in late:
        thread.join(30)
    assert slept == [0.0005]
    assert batches[1][0] == "busy" and sorted(batches[1][1:]) == ["late-1", "late-2"]
    monkeypatch.setattr(group_commit, "BUSY_WINDOW", 0.0)
    group.submit("after a quiet spell")
    assert slept == [0.0005] and batches[-1] == ["after a quiet spell"]
    assert errors == {}


def test_without_linger_a_leader_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(group_commit.time, "sleep", slept.append)
    group: GroupCommit[str] = GroupCommit(lambda items: [None] * len(items))
    for item in "abc":
        group.submit(item)
    assert slept == []


def test_coroutines_are_applied_together_off_their_loop_and_answered_after_the_batch() -> None:
    recorder = ThreadRecorder(lambda item: ValueError(item) if item == "bad" else None)
    group: GroupCommit[str] = GroupCommit(recorder)
    loop = CountingLoop()

    async def scenario() -> dict[str, BaseException | None]:
        first = asyncio.ensure_future(group.submit_async("first"))
        await eventually(recorder.first_started.is_set)
        others = {item: asyncio.ensure_future(group.submit_async(item)) for item in "abc"}
        others["bad"] = asyncio.ensure_future(group.submit_async("bad"))
        await eventually(functools.partial(queued_up, group, 4))
        assert not first.done()  # its batch is not applied yet: nobody is answered
        recorder.release_first.set()
        await first
        outcomes: dict[str, BaseException | None] = {}
        for item, task in others.items():
            try:
                await task
                outcomes[item] = None
            except ValueError as exc:
                outcomes[item] = exc
        return outcomes

    outcomes = run_on_loop(loop, scenario())
    group.close()
    assert recorder.batches == [["first"], ["a", "b", "c", "bad"]]
    assert [item for item, error in outcomes.items() if error is not None] == ["bad"]
    assert str(outcomes["bad"]) == "bad"
    # Applied by the group commit's thread, never by the loop's, and each batch's callers
    # were answered with one callback on their loop.
    assert {thread.name for thread in recorder.threads} == {"group-commit"}
    assert threading.main_thread() not in recorder.threads
    assert loop.scheduled_from_threads == 2


def test_blocking_callers_and_coroutines_share_batches_and_pass_the_lead() -> None:
    recorder = ThreadRecorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    errors: dict[str, BaseException] = {}
    threads = submit_in_threads(group, ["blocking-leader"], errors)
    assert recorder.first_started.wait(30)
    loop = CountingLoop()

    async def scenario() -> None:
        queued = asyncio.ensure_future(group.submit_async("coroutine"))
        await eventually(functools.partial(queued_up, group, 1))
        threads.extend(submit_in_threads(group, ["blocking-follower"], errors))
        await eventually(functools.partial(queued_up, group, 2))
        recorder.release_first.set()
        await queued
        # Nobody leads now; a coroutine alone is a batch of one, led by the thread.
        await group.submit_async("alone")

    run_on_loop(loop, scenario())
    for thread in threads:
        thread.join(30)
    group.close()
    assert recorder.batches == [
        ["blocking-leader"], ["coroutine", "blocking-follower"], ["alone"]
    ]  # fmt: skip
    assert [thread.name for thread in recorder.threads[1:]] == ["group-commit"] * 2
    assert errors == {}
    group.submit("after")  # a blocking caller alone leads again itself
    assert recorder.threads[-1] is threading.current_thread()


def test_a_closed_group_commit_stops_its_thread_and_refuses_coroutines() -> None:
    group: GroupCommit[str] = GroupCommit(lambda items: [None] * len(items))
    run_on_loop(asyncio.new_event_loop(), group.submit_async("a"))
    names = {thread.name for thread in threading.enumerate()}
    assert "group-commit" in names
    group.close()
    assert "group-commit" not in {thread.name for thread in threading.enumerate()}
    with pytest.raises(RuntimeError, match="closed"):
        run_on_loop(asyncio.new_event_loop(), group.submit_async("b"))
