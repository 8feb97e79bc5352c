"""A small Madrid (and one Barcelona) context to query: air quality, parking, streetlights.

Written through the store's own write path (``attribute_row`` → ``upsert_attributes`` →
``refresh_documents``), with names expanded the way the ingest expands them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from cityos_knowledge.entities.attributes import attribute_row
from cityos_knowledge.entities.repository import (
    insert_new_entities,
    refresh_documents,
    upsert_attributes,
)
from cityos_knowledge.query.paging import count_entities, select_entities
from cityos_knowledge.query.params import EntityQuery, parse_entity_query
from cityos_knowledge.query.shapes import StatementCache, run_query
from cityos_knowledge.store.database import bind_schema
from cityos_knowledge.store.tables import entities

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CREATED = datetime(2024, 5, 1, tzinfo=UTC)

SOL = [-3.7038, 40.4168]
PLAZA_ESPANA = [-3.7122, 40.4232]
ATOCHA = [-3.6907, 40.4065]
RETIRO_LAKE = [-3.6846, 40.4153]
SAGRADA_FAMILIA = [2.1744, 41.4036]
RETIRO = [
    [
        [-3.6925, 40.4080],
        [-3.6760, 40.4080],
        [-3.6760, 40.4220],
        [-3.6925, 40.4220],
        [-3.6925, 40.4080],
    ]
]


def expand(term: str) -> str:
    """What a request's @context does to the short names used here."""
    return term if ":" in term else VOCAB + term


def urn(kind: str, key: str) -> str:
    return f"urn:ngsi-ld:{kind}:{key}"


def prop(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def point(coordinates: list[float]) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": coordinates}}


def polygon(rings: list[Any]) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": rings}}


def languages(**texts: str) -> dict[str, Any]:
    return {"type": "LanguageProperty", "languageMap": texts}


AIR_SOL = urn("AirQualityObserved", "madrid-sol")
AIR_ESPANA = urn("AirQualityObserved", "madrid-espana")
AIR_BARCELONA = urn("AirQualityObserved", "barcelona-sagrada")
AIR_DELETED = urn("AirQualityObserved", "madrid-retired")
SPOT_SOL = urn("ParkingSpot", "sol-1")
SPOT_ATOCHA = urn("ParkingSpot", "atocha-7")
LIGHT_RETIRO = urn("Streetlight", "retiro-12")
LIGHT_SOL = urn("Streetlight", "sol-3")
PARK_RETIRO = urn("Park", "retiro")

_AIR_SOL_ATTRIBUTES: dict[str, Any] = {
    "NO2": prop(
        45.2,
        observedAt="2024-05-01T08:00:00Z",
        unitCode="GQ",
        **{VOCAB + "accuracy": prop(0.5)},
    ),
    "temperature": prop(21.5, observedAt="2024-05-01T08:00:00Z", unitCode="CEL"),
    "airQualityLevel": prop("moderate"),
    "dateObserved": prop({"@type": "DateTime", "@value": "2024-05-01T08:00:00Z"}),
    "location": point(SOL),
    "refDevice": rel(urn("Device", "sensor-sol")),
    "address": prop(
        {"streetAddress": "Puerta del Sol 1", "addressLocality": "Madrid", "postalCode": "28013"}
    ),
    "name": languages(es="Puerta del Sol", en="Sun Gate"),
    "pollutants": prop(["NO2", "PM10"]),
    "reliable": prop(True),
}

#: id → (types, scopes, attributes by short name; a list for several datasetIds).
CITY: dict[str, tuple[list[str], list[str] | None, dict[str, Any]]] = {
    AIR_SOL: (["AirQualityObserved"], ["/Madrid/Centro/Sol"], _AIR_SOL_ATTRIBUTES),
    AIR_ESPANA: (
        ["AirQualityObserved"],
        ["/Madrid/Moncloa/PlazaEspana", "/CompanyA/Sensors"],
        {
            "NO2": prop(38, observedAt="2024-05-01T09:00:00Z", unitCode="GQ"),
            "temperature": prop(19),
            "airQualityLevel": prop("good"),
            "dateObserved": prop("2024-04-30T12:00:00+02:00"),
            "location": point(PLAZA_ESPANA),
            "refDevice": rel(urn("Device", "sensor-espana")),
            "address": prop({"addressLocality": "Madrid", "postalCode": "28008"}),
            "pollutants": prop(["PM10"]),
            "reliable": prop(False),
        },
    ),
    AIR_BARCELONA: (
        ["AirQualityObserved"],
        ["/Barcelona/Eixample"],
        {
            "NO2": [
                prop(52, observedAt="2024-05-01T08:00:00Z"),
                prop(30, datasetId="urn:ngsi-ld:Dataset:reference"),
            ],
            "temperature": prop("n/a"),
            "airQualityLevel": prop("poor"),
            "location": point(SAGRADA_FAMILIA),
            "address": prop({"addressLocality": "Barcelona"}),
        },
    ),
    AIR_DELETED: (["AirQualityObserved"], ["/Madrid/Centro/Sol"], _AIR_SOL_ATTRIBUTES),
    SPOT_SOL: (
        ["ParkingSpot"],
        None,
        {
            "status": prop("free"),
            "category": prop(["onStreet", "forDisabled"]),
            "width": prop(2.5),
            "refParkingSite": rel(urn("ParkingSite", "sol")),
            "location": point([-3.7035, 40.4170]),
        },
    ),
    SPOT_ATOCHA: (
        ["ParkingSpot"],
        ["/Madrid/Retiro/Atocha"],
        {
            "status": prop("occupied"),
            "category": prop(["onStreet"]),
            "width": prop(3),
            "refParkingSite": rel(urn("ParkingSite", "atocha")),
            "location": point(ATOCHA),
        },
    ),
    LIGHT_RETIRO: (
        ["Streetlight", "ElectricDevice"],
        None,
        {
            "powerState": prop("on"),
            "lanternHeight": prop(6.5),
            "dateLastSwitchingOn": prop("2024-05-01T20:15:00Z"),
            "installationDate": prop("2019-03-15"),
            "openingTime": prop("08:30:00"),
            "description": languages(en="Lamp by the lake", es="Farola junto al lago"),
            "location": point(RETIRO_LAKE),
            "illuminatedArea": polygon(
                [
                    [
                        [-3.6850, 40.4150],
                        [-3.6840, 40.4150],
                        [-3.6840, 40.4156],
                        [-3.6850, 40.4156],
                        [-3.6850, 40.4150],
                    ]
                ]
            ),
        },
    ),
    LIGHT_SOL: (
        ["Streetlight"],
        None,
        {
            "powerState": prop("off"),
            "lanternHeight": prop(4),
            "location": point([-3.7040, 40.4166]),
        },
    ),
    PARK_RETIRO: (["Park"], None, {"name": prop("Parque del Retiro"), "location": polygon(RETIRO)}),
}


def _rows(attributes: Mapping[str, Any]) -> list[Any]:
    rows = []
    for name, attribute in attributes.items():
        for instance in attribute if isinstance(attribute, list) else [attribute]:
            rows.append(attribute_row(expand(name), instance))
    return rows


def seed(connection: Connection, schema: str) -> None:
    """Write the city (the deleted entity is then marked deleted, as the API does)."""
    bound = bind_schema(connection, schema)
    for index, (entity_id, (types, scopes, attributes)) in enumerate(CITY.items()):
        created = CREATED.replace(hour=index)
        insert_new_entities(bound, [(entity_id, [expand(t) for t in types], scopes)], created)
        upsert_attributes(
            bound, [(entity_id, row) for row in _rows(attributes)], created, only_newer=False
        )
        refresh_documents(bound, schema, [entity_id], created)
    bound.execute(update(entities).where(entities.c.id == AIR_DELETED).values(deleted_at=CREATED))


@dataclass
class City:
    """The seeded tenant and a way to ask it Query Entities questions.

    Every question is answered twice: by the statement the query package builds, and
    through a checking :class:`StatementCache` (SQL compiled once per query shape, values
    bound; ``check`` also rebuilds each cached statement and compares); both must agree.
    """

    engine: Engine
    schema: str
    cache: StatementCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = StatementCache(self.engine.dialect, check=True)

    def _rows(self, connection: Connection, variant: str, query: EntityQuery, build: Any) -> Any:
        cached = run_query(connection, self.cache, variant, query, expand, build)  # autocommit
        built = connection.execute(build(query, expand)).all()
        assert [tuple(row) for row in cached] == [tuple(row) for row in built]
        return built

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            yield bind_schema(connection, self.schema)

    def query(self, parameters: Mapping[str, str] | EntityQuery) -> list[str]:
        """Ids of the matching entities, in result order (limit 1000 unless given)."""
        query = self._parse(parameters)
        with self.connect() as connection:
            return [row.id for row in self._rows(connection, "page", query, _page)]

    def ids(self, **parameters: str) -> set[str]:
        return set(self.query(parameters))

    def count(self, **parameters: str) -> int:
        query = self._parse(parameters)
        with self.connect() as connection:
            return int(self._rows(connection, "count", query, _count)[0][0])

    def documents(self, **parameters: str) -> dict[str, dict[str, Any]]:
        query = self._parse(parameters)
        with self.connect() as connection:
            return {row.id: row.entity for row in self._rows(connection, "page", query, _page)}

    def all_ids(self) -> set[str]:
        with self.connect() as connection:
            return set(connection.execute(select(entities.c.id)).scalars())

    @staticmethod
    def _parse(parameters: Mapping[str, str] | EntityQuery) -> EntityQuery:
        if isinstance(parameters, EntityQuery):
            return parameters
        return parse_entity_query({"limit": "1000", **parameters})


def _page(query: EntityQuery, expand: Any) -> Any:
    return select_entities(query, expand=expand)


def _count(query: EntityQuery, expand: Any) -> Any:
    return count_entities(query, expand=expand)
