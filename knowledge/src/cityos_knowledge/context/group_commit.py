"""Group commit: concurrent callers' writes applied together, one transaction for all.

Callers (the API runs the synchronous facade in a thread pool) each :meth:`GroupCommit.submit`
one item and block until it is applied. One of them at a time is the *leader*: it takes what
is queued (at most ``max_batch`` items, never waiting for more), applies the batch, wakes
every caller with its own outcome and hands the lead to the first caller still queued. A
caller alone leads at once, so a lone write waits for nothing. Callers that arrive while a
batch runs queue up and go together in the next one: the busier the writers, the larger the
batches, and the fewer transactions, commits and ``NOTIFY``\\ s per write.

The leader is always one of the callers (no background thread to start, stop or lose), and
a caller returns only once the batch holding its item has been applied, i.e. committed.
This module knows nothing of the database; :mod:`cityos_knowledge.context.partial_update`
supplies the function that applies a batch (ADR 0052).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")

#: Applies a batch: one outcome per item, in order (None: applied; else the item's error).
Apply = Callable[[Sequence[Item]], Sequence[BaseException | None]]


class _Ticket(Generic[Item]):
    """One caller's item, its outcome, and the event that wakes the caller."""

    __slots__ = ("error", "finished", "item", "leads", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.wake = threading.Event()
        #: Set (under the lock) when the lead is handed to this ticket's caller.
        self.leads = False
        self.finished = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Applies concurrently submitted items in batches, led by one of the submitters."""

    def __init__(self, apply: Apply[Item], *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._apply = apply
        self._max_batch = max_batch
        self._lock = threading.Lock()
        # Invariant: while the queue is not empty, some caller leads (or is being woken to).
        self._queue: deque[_Ticket[Item]] = deque()
        self._leading = False

    @property
    def waiting(self) -> int:
        """How many submitted items are not yet taken into a batch."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: Item) -> None:
        """Apply ``item`` together with whatever else is submitted meanwhile; raise its error."""
        ticket = _Ticket(item)
        try:
            with self._lock:
                self._queue.append(ticket)
                ticket.leads = not self._leading
                self._leading = True
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

    def _lead(self) -> None:
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        outcomes: Sequence[BaseException | None] | None = None
        try:
            outcomes = self._apply([ticket.item for ticket in batch])
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
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket.error = outcome
            ticket.finished = True
        for ticket in batch:
            ticket.wake.set()
        self._hand_over()

    def _hand_over(self) -> None:
        """Wake the first caller still queued to lead, or note that nobody leads."""
        with self._lock:
            successor = self._queue[0] if self._queue else None
            self._leading = successor is not None
            if successor is not None:
                successor.leads = True
        if successor is not None:
            successor.wake.set()

    def _withdraw(self, ticket: _Ticket[Item]) -> None:
        """A caller interrupted while waiting (KeyboardInterrupt): its item leaves the queue
        unless already taken into a batch, and a lead handed to it is passed on."""
        with self._lock:
            if ticket in self._queue:
                self._queue.remove(ticket)
            passed_on = ticket.leads and not ticket.finished
        if passed_on:
            self._hand_over()
