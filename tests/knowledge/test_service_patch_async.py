"""The facade's partial update for a caller on an event loop (ADR 0055), on a real PostgreSQL.

``patch_attribute_async`` must answer exactly as ``patch_attribute`` does, only after the
update is committed, without blocking the loop and without a thread-pool hop for the fast
path; what could block the loop (a tenant this process has not written, the general path)
goes to the loop's executor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from cityos_knowledge.service import KnowledgeService, NotFoundError
from tests.knowledge.test_service_partial_update import ENTITY, GPS, SPEED, vehicle

pytestmark = pytest.mark.postgres


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the calls handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def run(coroutine: Coroutine[Any, Any, Any], executor: CountingExecutor) -> Any:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
        executor.shutdown()


def speed_of(service: KnowledgeService, tenant: str) -> list[Any]:
    instances = service.retrieve_entity(tenant, ENTITY)[SPEED]
    return [instance["value"] for instance in instances]


def test_concurrent_updates_from_a_loop_are_committed_without_a_thread_pool_hop(
    knowledge_service: KnowledgeService,
) -> None:
    knowledge_service.create_entity("city", vehicle())  # the tenant is known from here on
    executor = CountingExecutor()
    loop_threads: list[threading.Thread] = []

    async def updates() -> None:
        loop_threads.append(threading.current_thread())
        await asyncio.gather(
            knowledge_service.patch_attribute_async("city", ENTITY, SPEED, {"value": 1.0}),
            knowledge_service.patch_attribute_async(
                "city", ENTITY, SPEED, {"value": 2.0, "datasetId": GPS}
            ),
        )
        # Answered means committed: another connection sees both at once.
        assert speed_of(knowledge_service, "city")[:2] == [1.0, 2.0]

    run(updates(), executor)
    assert executor.calls == 0


def test_a_refused_update_raises_its_own_error_on_the_loop(
    knowledge_service: KnowledgeService,
) -> None:
    knowledge_service.create_entity("city", vehicle())
    executor = CountingExecutor()

    async def updates() -> list[BaseException | None]:
        outcomes = await asyncio.gather(
            knowledge_service.patch_attribute_async("city", ENTITY, SPEED, {"value": 3.0}),
            knowledge_service.patch_attribute_async(
                "city", "urn:ngsi-ld:Vehicle:404", SPEED, {"value": 4.0}
            ),
            return_exceptions=True,
        )
        return list(outcomes)

    applied, refused = run(updates(), executor)
    assert applied is None
    assert isinstance(refused, NotFoundError)
    assert speed_of(knowledge_service, "city")[0] == 3.0


def test_a_tenant_not_yet_written_by_this_process_is_created_off_the_loop(
    knowledge_service: KnowledgeService, knowledge_url: str
) -> None:
    writer = KnowledgeService.from_url(knowledge_url)  # another process's facade created it
    try:
        writer.create_entity("elsewhere", vehicle())
    finally:
        writer.close()
    executor = CountingExecutor()
    run(
        knowledge_service.patch_attribute_async("elsewhere", ENTITY, SPEED, {"value": 5.0}),
        executor,
    )
    assert executor.calls == 1
    assert speed_of(knowledge_service, "elsewhere")[0] == 5.0
