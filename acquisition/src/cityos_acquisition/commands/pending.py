"""Commands waiting for an HTTP device to poll them (``getCmd=1``).

A command for a polling device is queued here (status PENDING) until the device asks for
its commands; it is then handed over once (DELIVERED). With a database the queue is the
``acquisition.pending_commands`` table, so it survives a restart (ADR 0027); without one
it lives in memory.

Delivery is transactional: :meth:`PendingCommandStore.deliver` gives the commands to a
``confirm`` callback (which publishes their DELIVERED status and the request's
observations to the bus) and marks them delivered only if it returns. A bus that does not
confirm leaves them pending for the next poll.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import func

from cityos_acquisition.registry import tables

PendingStatus = Literal["PENDING", "DELIVERED"]
Confirm = Callable[[list["PendingCommand"]], None]


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    command: str
    params: Any
    entity_id: str


class PendingCommandStore(Protocol):
    def add(self, tenant: str, device_id: str, command: PendingCommand) -> PendingStatus:
        """Queue ``command`` unless its ``command_id`` is known (the bus delivers at least
        once); returns the command's status: PENDING, or DELIVERED if it already was."""
        ...

    def deliver(self, tenant: str, device_id: str, confirm: Confirm) -> list[PendingCommand]:
        """Hand the device's pending commands (oldest first, maybe none) to ``confirm``;
        they are delivered if it returns and stay pending if it raises."""
        ...


class PendingCommands:
    """The in-memory queue (no database configured): lost on restart."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], list[PendingCommand]] = defaultdict(list)
        self._delivered: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, tenant: str, device_id: str, command: PendingCommand) -> PendingStatus:
        with self._lock:
            if (tenant, command.command_id) in self._delivered:
                return "DELIVERED"
            queue = self._queues[(tenant, device_id)]
            if all(queued.command_id != command.command_id for queued in queue):
                queue.append(command)
            return "PENDING"

    def deliver(self, tenant: str, device_id: str, confirm: Confirm) -> list[PendingCommand]:
        with self._lock:
            commands = self._queues.pop((tenant, device_id), [])
        try:
            confirm(commands)
        except BaseException:
            with self._lock:
                self._queues[(tenant, device_id)][:0] = commands
            raise
        with self._lock:
            self._delivered.update((tenant, command.command_id) for command in commands)
        return commands


class PostgresPendingCommands:
    """The queue in ``acquisition.pending_commands``: it survives restarts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, tenant: str, device_id: str, command: PendingCommand) -> PendingStatus:
        table = tables.pending_commands
        statement = (
            pg_insert(table)
            .values(
                tenant=tenant,
                device_id=device_id,
                command_id=command.command_id,
                command=command.command,
                params=command.params,
                entity_id=command.entity_id,
            )
            .on_conflict_do_nothing(index_elements=["tenant", "command_id"])
            .returning(table.c.status)
        )
        with self._engine.begin() as connection:
            status = connection.execute(statement).scalar()
            if status is None:  # known already: a redelivered command
                status = connection.execute(
                    select(table.c.status).where(
                        and_(table.c.tenant == tenant, table.c.command_id == command.command_id)
                    )
                ).scalar_one()
        return "DELIVERED" if status == "DELIVERED" else "PENDING"

    def deliver(self, tenant: str, device_id: str, confirm: Confirm) -> list[PendingCommand]:
        c = tables.pending_commands.c
        with self._engine.begin() as connection:
            rows = connection.execute(
                select(c.id, c.command_id, c.command, c.params, c.entity_id)
                .where(and_(c.tenant == tenant, c.device_id == device_id, c.status == "PENDING"))
                .order_by(c.id)
                .with_for_update(skip_locked=True)  # two polls at once: each command once
            ).all()
            commands = [
                PendingCommand(row.command_id, row.command, row.params, row.entity_id)
                for row in rows
            ]
            confirm(commands)  # raises: rolled back, still pending
            if rows:
                connection.execute(
                    update(tables.pending_commands)
                    .where(c.id.in_([row.id for row in rows]))
                    .values(status="DELIVERED", delivered_at=func.now())
                )
        return commands
