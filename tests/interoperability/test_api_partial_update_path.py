"""``PATCH /entities/{id}/attrs/{attrId}`` is answered without the thread pool (ADR 0055).

The route awaits the knowledge facade's group commit on the event loop; the update is applied
by the group commit's own thread. A PATCH must therefore be answered (after its commit) while
every worker thread of the API's thread pool is taken.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

API = "/ngsi-ld/v1"
ENTITY = "urn:ngsi-ld:Vehicle:1"


class ThreadPoolTaken:
    """Holds every token of the application loop's default thread limiter until released."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self._borrowers: list[object] = []
        self._released = threading.Lock()
        self.released_by_timeout = False

    async def _take(self) -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        self._borrowers = [object() for _ in range(int(limiter.total_tokens))]
        for borrower in self._borrowers:
            limiter.acquire_on_behalf_of_nowait(borrower)

    async def _give_back(self) -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        for borrower in self._borrowers:
            limiter.release_on_behalf_of(borrower)

    def __enter__(self) -> ThreadPoolTaken:
        self._client.portal.call(self._take)  # type: ignore[union-attr]
        # A request stuck behind the taken pool is freed after a while, and the test fails.
        self._timer = threading.Timer(30, self._release, kwargs={"timed_out": True})
        self._timer.start()
        return self

    def _release(self, *, timed_out: bool = False) -> None:
        if self._released.acquire(blocking=False):
            self.released_by_timeout = timed_out
            self._client.portal.call(self._give_back)  # type: ignore[union-attr]

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()
        self._release()


def test_a_partial_update_is_answered_while_the_thread_pool_is_taken(
    ngsi_client: TestClient,
) -> None:
    entity = {"id": ENTITY, "type": "Vehicle", "speed": 1.0}
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    with ThreadPoolTaken(ngsi_client) as taken:
        answer = ngsi_client.patch(f"{API}/entities/{ENTITY}/attrs/speed", json={"value": 2.0})
    assert not taken.released_by_timeout
    assert answer.status_code == 204, answer.text
    assert ngsi_client.get(f"{API}/entities/{ENTITY}").json()["speed"]["value"] == 2.0


def test_the_general_path_still_answers_from_the_thread_pool(ngsi_client: TestClient) -> None:
    """NGSI-LD Null is not the fast path: it deletes the instance in a worker thread."""
    entity = {"id": ENTITY, "type": "Vehicle", "speed": 1.0, "name": "bus"}
    assert ngsi_client.post(f"{API}/entities", json=entity).status_code == 201
    answer = ngsi_client.patch(
        f"{API}/entities/{ENTITY}/attrs/speed", json={"value": "urn:ngsi-ld:null"}
    )
    assert answer.status_code == 204, answer.text
    assert "speed" not in ngsi_client.get(f"{API}/entities/{ENTITY}").json()
