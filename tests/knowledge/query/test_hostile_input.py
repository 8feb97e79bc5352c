"""Hostile query parameters: refused with a 400, or run as plain data — never as SQL.

Every value reaches PostgreSQL as a bound parameter; names are checked by the grammars.
After the whole barrage the databases' tables, their rows and the other tenant's data are
exactly as before, and no query returned anything it should not have.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DataError

from cityos_knowledge.entities.attributes import attribute_row
from cityos_knowledge.entities.repository import (
    insert_new_entities,
    refresh_documents,
    upsert_attributes,
)
from cityos_knowledge.query import INVALID_REGULAR_EXPRESSION
from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.store.database import KnowledgeStore, bind_schema
from cityos_knowledge.store.tables import attributes, entities, tenants
from tests.knowledge.query.city import (
    AIR_BARCELONA,
    AIR_DELETED,
    AIR_ESPANA,
    AIR_SOL,
    CREATED,
    City,
    expand,
    languages,
    prop,
)

pytestmark = pytest.mark.postgres

SECRET = "urn:ngsi-ld:AirQualityObserved:other-tenant-secret"
INJECTIONS = [
    "x'; DROP TABLE entities; --",
    "'); DELETE FROM attributes; --",
    "' OR '1'='1",
    '" OR 1=1 --',
    "$$; SELECT pg_sleep(5); $$",
    "\\'; TRUNCATE cityos_knowledge.tenants; --",
    "Ω≈ç√∫ 🚀 東京 ‮txet",
    "A" * 8000,
]


@pytest.fixture(scope="module")
def other_tenant(city: City) -> str:
    """A second tenant holding an entity that matches every probe below."""
    store = KnowledgeStore(city.engine)
    schema = store.tenants.ensure("other")
    attributes_of_secret = {"name": languages(en="Sun Gate"), "airQualityLevel": prop("good")}
    for injection in INJECTIONS[:3]:
        attributes_of_secret[f"probe{len(attributes_of_secret)}"] = prop(injection)
    with city.engine.begin() as connection:
        bound = bind_schema(connection, schema)
        insert_new_entities(bound, [(SECRET, [expand("AirQualityObserved")], None)], CREATED)
        rows = [(SECRET, attribute_row(expand(n), a)) for n, a in attributes_of_secret.items()]
        upsert_attributes(bound, rows, CREATED, only_newer=False)
        refresh_documents(bound, schema, [SECRET], CREATED)
    return schema


def _snapshot(city: City, schemas: list[str]) -> dict[str, object]:
    """Every table of the tenants and the registry, with its row count."""
    with city.engine.connect() as connection:
        tables = (
            connection.execute(
                text(
                    "SELECT schemaname || '.' || tablename FROM pg_tables "
                    "WHERE schemaname = ANY(:schemas) ORDER BY 1"
                ),
                {"schemas": [*schemas, "cityos_knowledge"]},
            )
            .scalars()
            .all()
        )
        counts: dict[str, object] = {"tables": list(tables)}
        for schema in schemas:
            bound = bind_schema(connection, schema)
            for table in (entities, attributes):
                counts[f"{schema}.{table.name}"] = bound.execute(
                    select(func.count()).select_from(table)
                ).scalar_one()
        counts["tenants"] = connection.execute(
            select(func.count()).select_from(tenants)
        ).scalar_one()
    return counts


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_literal_regex(text: str) -> str:
    """The injection with the characters that would make it an invalid regex removed."""
    return text.replace("(", "").replace(")", "").replace("$", "")


def _probes() -> list[dict[str, str]]:
    probes: list[dict[str, str]] = []
    for injection in INJECTIONS:
        quoted = _quoted(injection)
        probes += [
            {"q": f"airQualityLevel=={quoted}"},
            {"q": f"name[en]=={quoted}"},
            {"q": f"address[addressLocality]=={quoted},{quoted}"},
            {"q": f"airQualityLevel=={quoted}..{quoted}"},
            {"q": f"airQualityLevel~={_quoted(_as_literal_regex(injection))}"},
            {"q": injection},
            {"q": f"airQualityLevel=={injection}"},
            {"q": f"{injection}==1"},
            {"type": injection},
            {"scopeQ": injection},
            {"scopeQ": f"/Madrid/{injection}"},
            {"id": f"urn:ngsi-ld:X:{injection}"},
            {"attrs": injection},
            {"pick": injection},
            {"orderBy": injection},
            {"georel": injection, "geometry": "Point", "coordinates": "[1,2]"},
            {"georel": "within", "geometry": injection, "coordinates": "[1,2]"},
            {"georel": "within", "geometry": "Point", "coordinates": injection},
            {
                "georel": "within",
                "geometry": "Point",
                "coordinates": "[1,2]",
                "geoproperty": injection,
            },
        ]
    probes += [
        {"q": 'name=="\\u0000"'},
        {"q": "airQualityLevel==\x00"},
        {"q": "NO2>1 --"},
        {"q": "NO2>1--"},
        {"q": "NO2>1;--"},
        {"q": "(" * 40 + "NO2>1" + ")" * 40},
        {"q": "airQualityLevel==" + _quoted("B" * 9000)},
        {"type": "AirQualityObserved'); DROP TABLE entities;--"},
        {"id": "urn:a:b'); DROP TABLE entities;--"},
    ]
    return probes


def _expected(probe: dict[str, str], city: City) -> set[str]:
    """What an accepted probe may return: projections and orderings select every entity."""
    if set(probe) <= {"pick", "orderBy"}:
        return city.all_ids() - {AIR_DELETED}
    if probe.get("q", "").startswith("(("):
        return {AIR_SOL, AIR_ESPANA, AIR_BARCELONA}
    return set()


def test_hostile_parameters_never_run_as_sql(city: City, other_tenant: str) -> None:
    before = _snapshot(city, [city.schema, other_tenant])
    refused = answered = 0
    for probe in _probes():
        try:
            found = city.ids(**probe)
        except InvalidQueryError:
            refused += 1
            continue
        answered += 1
        assert found == _expected(probe, city), probe
    assert _snapshot(city, [city.schema, other_tenant]) == before
    assert refused > 50
    assert answered > 30


def test_an_invalid_regular_expression_is_a_database_data_error_not_an_injection(
    city: City, other_tenant: str
) -> None:
    before = _snapshot(city, [city.schema, other_tenant])
    for probe in (
        {"idPattern": ".*'); SELECT pg_sleep(5); --"},
        {"q": 'airQualityLevel~="(unclosed"'},
    ):
        with pytest.raises(DataError) as caught:
            city.ids(**probe)
        assert getattr(caught.value.orig, "pgcode", None) == INVALID_REGULAR_EXPRESSION
    assert _snapshot(city, [city.schema, other_tenant]) == before


def test_the_probes_do_find_data_when_it_is_there(city: City, other_tenant: str) -> None:
    """The barrage above is meaningful: the same shapes match real values in each tenant."""
    assert city.ids(q='airQualityLevel=="good"') == {AIR_ESPANA}
    other = City(city.engine, other_tenant)
    assert other.ids(q='airQualityLevel=="good"') == {SECRET}
    assert other.ids(q=f"probe2=={_quoted(INJECTIONS[0])}") == {SECRET}
    assert other.ids(q=f"probe4=={_quoted(INJECTIONS[2])}") == {SECRET}
    assert other.ids(q='name[en]=="Sun Gate"') == {SECRET}
