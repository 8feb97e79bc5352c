"""Group commit: concurrent callers' writes applied together, one transaction for all.

Callers each submit one item and are answered once it is applied. A batch is applied by a
*leader*: it takes what is queued (at most ``max_batch`` items; it waits for more only when
it lingers, below), applies the batch, answers every caller with its own outcome and hands
the lead on. A lone item after a quiet spell waits for nothing. Items that arrive while
batches run queue up and go together in the next one: the busier the writers, the larger
the batches, and the fewer transactions, commits and ``NOTIFY``\\ s per write.

At most ``in_flight`` batches are applied at once (ADR 0068). With one, each batch waits for
the one before it. With two, a batch can start while the one before it waits for the
database (its round trips, its commit), so that a process is not bound by one batch's
latency; a second lead is given only while every leader is busy applying, so batches stay
as large as the load makes them. Batches in flight at once are concurrent: their items were
all submitted before any of them was answered, and the function that applies them must
order its own conflicts (the partial updates lock their rows in one order).

A ``linger`` makes a leader that finds fewer than two items queued wait that long before it
takes them, while the group commit is busy (a batch is being applied, or one ended within
:data:`BUSY_WINDOW`): the items that arrive meanwhile join its batch. Larger batches cost
the database and the process less per item; a caller after a quiet spell waits for nothing.

Two kinds of callers share one queue (ADR 0052, ADR 0055):

- :meth:`GroupCommit.submit`, for a thread that may block: it waits for its outcome and, when
  the lead is handed to it (or nobody leads when it arrives), leads a batch itself;
- :meth:`GroupCommit.submit_async`, for a coroutine on an event loop, which must not block:
  its item is led by one of the group commit's own threads (started on first use, one per
  batch in flight at most), and the caller's future is resolved after the commit, with one
  ``call_soon_threadsafe`` per event loop per batch. The caller never leaves its loop: no
  thread-pool hop per write.

The lead goes to the first item still queued: its thread if a blocking caller's, one of the
group commit's threads otherwise. Either way a caller is answered only once the batch
holding its item has been applied, i.e. committed. This module knows nothing of the database;
:mod:`cityos_knowledge.context.partial_update` supplies the function that applies a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")

#: While a batch is applied or one ended this recently (seconds), a leader may linger.
BUSY_WINDOW = 0.01

#: Applies a batch: one outcome per item, in order (None: applied; else the item's error).
Apply = Callable[[Sequence[Item]], Sequence[BaseException | None]]

#: An event loop's callers of one batch and their outcomes.
_Answers = list[tuple["asyncio.Future[None]", BaseException | None]]


class _Ticket(Generic[Item]):
    """One caller's item, its outcome, and how the caller is answered.

    A blocking caller waits on ``wake``; a coroutine awaits ``future`` on ``loop``.
    """

    __slots__ = ("error", "finished", "future", "item", "leads", "loop", "wake")

    def __init__(
        self,
        item: Item,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.item = item
        self.loop = loop
        self.future = future
        self.wake = threading.Event() if future is None else None
        #: Set (under the lock) when the lead is handed to this ticket's caller.
        self.leads = False
        self.finished = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Applies concurrently submitted items in batches, ``in_flight`` batches at a time."""

    def __init__(
        self,
        apply: Apply[Item],
        *,
        max_batch: int = 64,
        in_flight: int = 1,
        linger: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._apply = apply
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._linger = linger
        #: When the last batch ended (time.monotonic()).
        self._last_finished = float("-inf")
        self._name = name
        self._lock = threading.Lock()
        # Invariant: while the queue is not empty, some leader is applying a batch or a lead
        # is pending (given to a caller or to the threads, and not taken yet).
        self._queue: deque[_Ticket[Item]] = deque()
        #: Leaders applying a batch.
        self._applying = 0
        #: A lead given and not taken yet (there is never more than one).
        self._lead_pending = False
        #: The pending lead is the group commit's threads' to take.
        self._thread_leads = False
        self._turn = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._idle_threads = 0
        self._closed = False

    @property
    def waiting(self) -> int:
        """How many submitted items are not yet taken into a batch."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: Item) -> None:
        """Apply ``item`` together with whatever else is submitted meanwhile; raise its error."""
        ticket = _Ticket(item)
        assert ticket.wake is not None
        try:
            with self._lock:
                self._queue.append(ticket)
                if self._may_lead():
                    self._lead_pending = True
                    ticket.leads = True
            if not ticket.leads:
                ticket.wake.wait()
        except BaseException:  # interrupted (KeyboardInterrupt) before its batch was taken
            self._withdraw(ticket)
            raise
        if not ticket.finished:
            # Woken to lead: this ticket is first in the queue, so in the batch.
            self._lead()
        if ticket.error is not None:
            raise ticket.error

    async def submit_async(self, item: Item) -> None:
        """:meth:`submit` for a coroutine: the item is applied by the group commit's threads
        (or a blocking caller leading), and this returns once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        ticket = _Ticket(item, loop=loop, future=future)
        with self._lock:
            if self._closed:
                raise RuntimeError("the group commit is closed")
            self._queue.append(ticket)
            if self._may_lead():
                self._lead_pending = True
                self._give_lead_to_thread()
        # A cancelled caller is not answered; its item is applied all the same (it may
        # already be in a batch), as a request whose client went away.
        await future

    def close(self) -> None:
        """Stop the group commit's threads once they have applied what is queued."""
        with self._lock:
            self._closed = True
            self._turn.notify_all()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _may_lead(self) -> bool:
        """Whether a new lead is due (with the lock held): no lead is pending, and every
        leader is busy applying while fewer than ``in_flight`` batches run."""
        return not self._lead_pending and self._applying < self._in_flight

    def _give_lead_to_thread(self) -> None:
        """Make one of the group commit's threads lead next (with the lock held)."""
        self._thread_leads = True
        if self._idle_threads == 0 and len(self._threads) < self._in_flight:
            number = len(self._threads) + 1
            name = self._name if number == 1 else f"{self._name}-{number}"
            thread = threading.Thread(target=self._run_thread, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        else:
            self._turn.notify()

    def _run_thread(self) -> None:
        while True:
            with self._lock:
                while not self._thread_leads:
                    if self._closed and not self._queue:
                        self._threads.remove(threading.current_thread())
                        return
                    self._idle_threads += 1
                    self._turn.wait()
                    self._idle_threads -= 1
                self._thread_leads = False
            self._lead()

    def _lead(self) -> None:
        if self._linger:
            with self._lock:
                lingers = len(self._queue) < 2 and (
                    self._applying > 0 or time.monotonic() - self._last_finished < BUSY_WINDOW
                )
            if lingers:  # busy: let the next arrivals join this batch
                time.sleep(self._linger)
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            self._lead_pending = False
            self._applying += 1
            # Every leader busy and more queued than this batch takes: another may start.
            self._pass_lead()
        outcomes: Sequence[BaseException | None] | None = None
        try:
            outcomes = self._apply([ticket.item for ticket in batch]) if batch else []
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as exc:  # every caller of the batch gets it, the leader included
            outcomes = [exc] * len(batch)
        finally:
            # Also when the leader is interrupted: no caller may wait for ever.
            if outcomes is None:
                outcomes = [RuntimeError("the batch was interrupted")] * len(batch)
            self._finish(batch, outcomes)

    def _finish(self, batch: list[_Ticket[Item]], outcomes: Sequence[BaseException | None]) -> None:
        answers: dict[asyncio.AbstractEventLoop, _Answers] = {}
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket.error = outcome
            ticket.finished = True
            if ticket.future is not None and ticket.loop is not None:
                answers.setdefault(ticket.loop, []).append((ticket.future, outcome))
        for ticket in batch:
            if ticket.wake is not None:
                ticket.wake.set()
        for loop, loop_answers in answers.items():
            # A closed loop (RuntimeError) has nobody left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_answer, loop_answers)
        with self._lock:
            self._applying -= 1
            self._last_finished = time.monotonic()
            self._pass_lead()

    def _pass_lead(self) -> None:
        """Give the lead to the first item still queued if a new lead is due (with the lock
        held): to its caller if it blocks, else to the threads."""
        if not self._queue or not self._may_lead():
            return
        self._lead_pending = True
        successor = self._queue[0]
        if successor.wake is None:  # a coroutine's item: a thread leads
            self._give_lead_to_thread()
            return
        successor.leads = True
        successor.wake.set()

    def _withdraw(self, ticket: _Ticket[Item]) -> None:
        """A caller interrupted while waiting (KeyboardInterrupt): its item leaves the queue
        unless already taken into a batch, and a lead given to it is passed on."""
        with self._lock:
            if ticket in self._queue:
                self._queue.remove(ticket)
            if ticket.leads and not ticket.finished:
                self._lead_pending = False
                self._pass_lead()


def _answer(answers: _Answers) -> None:
    """On the callers' event loop: resolve each caller's future with its own outcome."""
    for future, outcome in answers:
        if future.done():  # the caller was cancelled
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
