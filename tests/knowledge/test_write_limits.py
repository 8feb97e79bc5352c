"""Facade writes that must not depend on the writer's time zone or fail on index limits.

Real PostgreSQL+PostGIS with the monthly-partitioned history (no TimescaleDB): an
observedAt with a non-UTC offset must land in the partition of its UTC month, an id,
name or datasetId too long for a btree index must be refused as BadRequestData (a 400)
instead of failing inside PostgreSQL, and a string value of any length must be stored and
found by ``q`` (ADR 0019).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from cityos_knowledge.entities.limits import MAX_KEY_BYTES
from cityos_knowledge.service import (
    BadRequestDataError,
    KnowledgeService,
    parse_entity_query,
    parse_temporal_query,
)

pytestmark = pytest.mark.postgres

V = "https://example.org/vocab/"
LEVEL = V + "level"
ENTITY, OTHER = "urn:ngsi-ld:Tank:1", "urn:ngsi-ld:Tank:2"


def _tank(level: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": ENTITY,
        "type": V + "Tank",
        LEVEL: level or {"type": "Property", "value": 1, "observedAt": "2026-11-01T00:00:00Z"},
    }


def _history(service: KnowledgeService) -> list[tuple[Any, str]]:
    entity = service.retrieve_temporal("city", ENTITY, parse_temporal_query({}))
    return [(instance["value"], instance["observedAt"]) for instance in entity[LEVEL]]


# -- observedAt with an offset: the partition of its UTC month ---------------------------
# Each case uses a month years away, so only the write itself can create its partition:
# 00:30 on the 1st at +02:00 is 22:30 on the last day of the previous month in UTC.


def _create(service: KnowledgeService, observed_at: str) -> None:
    service.create_entity(
        "city", _tank({"type": "Property", "value": 7, "observedAt": observed_at})
    )


def _append(service: KnowledgeService, observed_at: str) -> None:
    service.create_entity("city", _tank())
    service.append_attributes(
        "city", ENTITY, {LEVEL: {"type": "Property", "value": 7, "observedAt": observed_at}}
    )


def _patch(service: KnowledgeService, observed_at: str) -> None:
    service.create_entity("city", _tank())
    service.patch_attribute("city", ENTITY, LEVEL, {"value": 7, "observedAt": observed_at})


def _temporal_append(service: KnowledgeService, observed_at: str) -> None:
    service.create_temporal_entity("city", _tank())
    service.append_temporal_attributes(
        "city", ENTITY, {LEVEL: [{"type": "Property", "value": 7, "observedAt": observed_at}]}
    )


@pytest.mark.parametrize(
    ("write", "observed_at", "utc"),
    [
        (_create, "2031-06-01T00:30:00+02:00", "2031-05-31T22:30:00Z"),
        (_append, "2032-03-01T01:15:00+03:00", "2032-02-29T22:15:00Z"),
        (_patch, "2033-01-01T00:30:00+02:00", "2032-12-31T22:30:00Z"),
        (_temporal_append, "2034-09-01T00:05:00+05:30", "2034-08-31T18:35:00Z"),
        # a negative offset moves the instance into the NEXT month
        (_temporal_append, "2035-04-30T23:30:00-03:00", "2035-05-01T02:30:00Z"),
    ],
    ids=["create", "append", "patch", "temporal-append", "temporal-append-negative"],
)
def test_an_observed_at_with_an_offset_lands_in_the_partition_of_its_utc_month(
    knowledge_service: KnowledgeService,
    write: Callable[[KnowledgeService, str], None],
    observed_at: str,
    utc: str,
) -> None:
    write(knowledge_service, observed_at)
    assert (7, utc) in _history(knowledge_service)
    assert knowledge_service.retrieve_entity("city", ENTITY)[LEVEL]["value"] == 7


# -- ids, names and datasetIds too long for a btree index: BadRequestData ----------------


def _random_text(characters: int) -> str:
    """URI-safe text that does not compress (compression would let a long key fit)."""
    return secrets.token_urlsafe(characters)[:characters]


#: Longer on its own than a btree index entry can be (about 2,700 bytes).
TOO_LONG = _random_text(3_000)


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.create_entity("city", {**_tank(), "id": "urn:x:" + TOO_LONG}),
        lambda s: s.create_entity("city", {**_tank(), "id": OTHER, V + TOO_LONG: _tank()[LEVEL]}),
        lambda s: s.create_entity("city", {**_tank(), "id": OTHER, "type": V + TOO_LONG}),
        lambda s: s.append_attributes(
            "city", ENTITY, {LEVEL: {"type": "Property", "value": 2, "datasetId": TOO_LONG}}
        ),
        lambda s: s.merge_entity(
            "city", ENTITY, {LEVEL: {"type": "Property", "value": 2, "datasetId": TOO_LONG}}
        ),
        lambda s: s.append_temporal_attributes(
            "city", ENTITY, {V + TOO_LONG: [{"type": "Property", "value": 2}]}
        ),
    ],
    ids=[
        "create-id",
        "create-name",
        "create-type",
        "append-dataset",
        "merge-dataset",
        "temporal-name",
    ],
)
def test_an_over_long_id_name_or_dataset_id_is_bad_request_data(
    knowledge_service: KnowledgeService, write: Callable[[KnowledgeService], Any]
) -> None:
    knowledge_service.create_entity("city", _tank())
    with pytest.raises(BadRequestDataError, match=f"at most {MAX_KEY_BYTES} bytes") as error:
        write(knowledge_service)
    assert error.value.status == 400
    # nothing was written, and the store keeps working
    assert _history(knowledge_service) == [(1, "2026-11-01T00:00:00Z")]
    knowledge_service.append_attributes("city", ENTITY, {LEVEL: {"type": "Property", "value": 3}})
    assert knowledge_service.retrieve_entity("city", ENTITY)[LEVEL]["value"] == 3


def test_the_limit_counts_utf8_bytes_not_characters(knowledge_service: KnowledgeService) -> None:
    fits = "urn:x:" + "€" * ((MAX_KEY_BYTES - 6) // 3)  # 3 bytes each: exactly at the limit
    knowledge_service.create_entity("city", {**_tank(), "id": fits})
    assert knowledge_service.retrieve_entity("city", fits)["id"] == fits
    with pytest.raises(BadRequestDataError, match="bytes long"):
        knowledge_service.create_entity("city", {**_tank(), "id": fits + "€"})


def test_a_batch_refuses_only_its_over_long_entity(knowledge_service: KnowledgeService) -> None:
    result = knowledge_service.batch_upsert(
        "city", [{**_tank(), "id": "urn:x:" + TOO_LONG}, _tank()]
    )
    assert result.success == [ENTITY]
    [refused] = result.errors
    assert isinstance(refused.error, BadRequestDataError)
    assert "bytes long" in str(refused.error)


# -- string values: any length is legitimate data, stored and found by q -----------------


def test_a_long_random_string_value_is_stored_and_found_by_q(
    knowledge_service: KnowledgeService,
) -> None:
    # 8,000 random characters (a q expression is at most 8,192), three times what a btree
    # entry holds; the two values share all but their last character, 1 or 2 (ordered
    # alike in any collation), so the indexed prefix alone cannot tell them apart.
    long_value = _random_text(7_999) + "1"
    near = long_value[:-1] + "2"
    knowledge_service.create_entity(
        "city", {**_tank(), LEVEL: {"type": "Property", "value": long_value}}
    )
    knowledge_service.create_entity(
        "city", {**_tank(), "id": OTHER, LEVEL: {"type": "Property", "value": near}}
    )
    assert knowledge_service.retrieve_entity("city", ENTITY)[LEVEL]["value"] == long_value

    def ids(q: str) -> list[str]:
        query = parse_entity_query({"q": q, "limit": "100"})
        page = knowledge_service.query_entities("city", query, expand=lambda term: V + term)
        return sorted(entity["id"] for entity in page.entities)

    assert ids(f'level=="{long_value}"') == [ENTITY]
    assert ids(f'level=="{near}"') == [OTHER]
    assert ids(f'level!="{long_value}"') == [OTHER]
    assert ids(f'level=="{long_value[:256]}"') == []  # a shared prefix is not equality
    assert ids(f'level>="{long_value}"') == [ENTITY, OTHER]
    assert ids(f'level>"{long_value}"') == [OTHER]
    assert ids(f'level<"{near}"') == [ENTITY]
    # and the store keeps working for the next write of the same attribute
    knowledge_service.append_attributes(
        "city", ENTITY, {LEVEL: {"type": "Property", "value": long_value + "!"}}
    )
    assert ids(f'level=="{long_value}!"') == [ENTITY]
