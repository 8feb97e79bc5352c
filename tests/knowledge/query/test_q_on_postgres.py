"""Every ``q`` construct, run as SQL on a real PostgreSQL+PostGIS over a seeded city."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cityos_knowledge.query.nodes import Operator, Text, Uri
from cityos_knowledge.query.paging import select_entities
from cityos_knowledge.query.params import parse_entity_query
from cityos_knowledge.query.targets import Target
from cityos_knowledge.query.translate import compare
from cityos_knowledge.store.tables import attributes
from tests.knowledge.query.city import (
    AIR_BARCELONA,
    AIR_ESPANA,
    AIR_SOL,
    LIGHT_RETIRO,
    LIGHT_SOL,
    PARK_RETIRO,
    SPOT_ATOCHA,
    SPOT_SOL,
    VOCAB,
    City,
    expand,
)

pytestmark = pytest.mark.postgres

AIR = {"type": "AirQualityObserved"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # existence and non-existence
        ("pollutants", {AIR_SOL, AIR_ESPANA}),
        ("!refDevice", {AIR_BARCELONA}),
        ("address[postalCode]", {AIR_SOL, AIR_ESPANA}),
        ("NO2.accuracy", {AIR_SOL}),
        ("NO2.unitCode", {AIR_SOL, AIR_ESPANA}),
        ("!NO2.observedAt", set()),
        # numbers: every operator, ranges, lists; several datasetIds match through any
        ("NO2>40", {AIR_SOL, AIR_BARCELONA}),
        ("NO2>=45.2", {AIR_SOL, AIR_BARCELONA}),
        ("NO2<40", {AIR_ESPANA, AIR_BARCELONA}),
        ("NO2<=38", {AIR_ESPANA, AIR_BARCELONA}),
        ("NO2==38", {AIR_ESPANA}),
        ("NO2!=38", {AIR_SOL, AIR_BARCELONA}),
        ("NO2==30..40", {AIR_ESPANA, AIR_BARCELONA}),
        ("NO2!=30..50", {AIR_BARCELONA}),
        ("NO2==38,52", {AIR_ESPANA, AIR_BARCELONA}),
        ("NO2!=38,45.2", {AIR_BARCELONA}),
        # a value of another type never matches a comparison (and never raises)
        ("temperature>20", {AIR_SOL}),
        ('temperature=="n/a"', {AIR_BARCELONA}),
        ('temperature!="n/a"', {AIR_SOL, AIR_ESPANA}),
        ('NO2=="38"', set()),
        # strings: equality, lists, lexicographic order, ranges, bare words
        ('airQualityLevel=="good"', {AIR_ESPANA}),
        ('airQualityLevel=="good","poor"', {AIR_ESPANA, AIR_BARCELONA}),
        ('airQualityLevel>"m"', {AIR_SOL, AIR_BARCELONA}),
        ('airQualityLevel=="a".."h"', {AIR_ESPANA}),
        ("airQualityLevel==moderate", {AIR_SOL}),
        # booleans
        ("reliable==true", {AIR_SOL}),
        ("reliable!=true", {AIR_ESPANA}),
        ("reliable==false", {AIR_ESPANA}),
        # date-times compare as instants, typed literal or plain string, any offset
        ("dateObserved>2024-04-30T11:00:00Z", {AIR_SOL}),
        ("dateObserved<2024-04-30T11:00:00Z", {AIR_ESPANA}),
        ("dateObserved==2024-04-30T10:00:00Z", {AIR_ESPANA}),
        ("dateObserved==2024-04-30T00:00:00Z..2024-05-01T00:00:00Z", {AIR_ESPANA}),
        # relationships: equality with the object URI; ordering never matches
        ("refDevice==urn:ngsi-ld:Device:sensor-sol", {AIR_SOL}),
        ('refDevice=="urn:ngsi-ld:Device:sensor-espana"', {AIR_ESPANA}),
        ("refDevice!=urn:ngsi-ld:Device:sensor-sol", {AIR_ESPANA}),
        ('refDevice>"urn:a"', set()),
        # patterns
        ('airQualityLevel~="^(good|poor)$"', {AIR_ESPANA, AIR_BARCELONA}),
        ('airQualityLevel!~="^good"', {AIR_SOL, AIR_BARCELONA}),
        ('address[addressLocality]~="(?i)^barcelona"', {AIR_BARCELONA}),
        ('NO2~="4"', set()),
        # sub-attributes and metadata
        ("NO2.accuracy<1", {AIR_SOL}),
        ("NO2.observedAt>=2024-05-01T08:30:00Z", {AIR_ESPANA}),
        ('NO2.observedAt<"2024-05-01T08:30:00Z"', {AIR_SOL, AIR_BARCELONA}),
        ('NO2.unitCode=="GQ"', {AIR_SOL, AIR_ESPANA}),
        ("NO2.datasetId==urn:ngsi-ld:Dataset:reference", {AIR_BARCELONA}),
        # compound members
        ('address[addressLocality]=="Madrid"', {AIR_SOL, AIR_ESPANA}),
        ('address[postcode]=="28013"', set()),
        ('address[postalCode]=="28000".."28010"', {AIR_ESPANA}),
        # language maps: one language, any language, or the attribute itself
        ('name[en]=="Sun Gate"', {AIR_SOL}),
        ('name[es]=="Sun Gate"', set()),
        ('name=="Puerta del Sol"', {AIR_SOL}),
        ('name[*]~="^Sun"', {AIR_SOL}),
        # arrays contain the value
        ('pollutants=="PM10"', {AIR_SOL, AIR_ESPANA}),
        ('pollutants=="NO2","CO"', {AIR_SOL}),
        ('pollutants!="NO2"', {AIR_ESPANA}),
        # precedence and grouping
        ('airQualityLevel=="good"|NO2>50;temperature=="n/a"', {AIR_ESPANA, AIR_BARCELONA}),
        ('(airQualityLevel=="good"|NO2>50);temperature=="n/a"', {AIR_BARCELONA}),
    ],
)
def test_q_on_air_quality(city: City, q: str, expected: set[str]) -> None:
    assert city.ids(**AIR, q=q) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('category=="forDisabled"', {SPOT_SOL}),
        ("width>2.5", {SPOT_ATOCHA}),
        ("width==2.5..3", {SPOT_SOL, SPOT_ATOCHA}),
        ('powerState=="on";lanternHeight>5', {LIGHT_RETIRO}),
        ("installationDate<2020-01-01", {LIGHT_RETIRO}),
        ("installationDate==2019-03-15", {LIGHT_RETIRO}),
        ("openingTime>=08:00:00", {LIGHT_RETIRO}),
        ("openingTime<08:00:00", set()),
        ("dateLastSwitchingOn>2024-05-01T20:00:00Z", {LIGHT_RETIRO}),
        ('description[*]~="lago"', {LIGHT_RETIRO}),
        ('description[*]!="Lamp by the lake"', set()),
        ('description[en]!="Lamp by the lake"', set()),
        ('description[es]!="Lamp by the lake"', {LIGHT_RETIRO}),
        ("!description;powerState", {LIGHT_SOL}),
        ('name=="Parque del Retiro"', {PARK_RETIRO}),
        (
            "createdAt>=2024-05-01T06:00:00Z;createdAt<2024-05-01T08:00:00Z",
            {LIGHT_RETIRO, LIGHT_SOL},
        ),
        ("modifiedAt==2024-05-01T04:00:00Z", {SPOT_SOL}),
        ("createdAt", {SPOT_SOL, SPOT_ATOCHA, LIGHT_RETIRO, LIGHT_SOL, PARK_RETIRO}),
        ("deletedAt", set()),
    ],
)
def test_q_on_other_entity_types(city: City, q: str, expected: set[str]) -> None:
    assert city.ids(type="ParkingSpot,Streetlight,Park", q=q) == expected


def test_an_attribute_that_no_entity_has_matches_nothing(city: City) -> None:
    assert city.ids(q="noSuchAttribute") == set()
    assert city.ids(q="noSuchAttribute>1") == set()
    assert city.ids(type="Streetlight", q="!noSuchAttribute") == {LIGHT_RETIRO, LIGHT_SOL}


def test_names_are_expanded_before_they_are_looked_up(city: City) -> None:
    query = parse_entity_query({"q": 'airQualityLevel=="good"'})
    with city.connect() as connection:
        as_written = connection.execute(select_entities(query)).scalars().all()
        expanded = connection.execute(select_entities(query, expand=expand)).scalars().all()
    assert (as_written, expanded) == ([], [AIR_ESPANA])
    assert city.ids(type=VOCAB + "Park") == {PARK_RETIRO}


@pytest.mark.parametrize("value", [Text("good"), Uri("urn:ngsi-ld:Device:sensor-sol")])
def test_string_equality_matches_the_prefix_index_expression(city: City, value: Any) -> None:
    """``attributes_name_text`` covers ``left(value_text, 256)`` (ADR 0019): the translator's
    string equality on ``value_text`` must reach it with the prefix, not the name alone.

    The target has only the text column: on a plain attribute the equality is OR-ed with
    the array and language-map alternatives, which no index covers.
    """
    target = Target(
        present=attributes.c.value_text.is_not(None),
        json=None,
        text=attributes.c.value_text,
        text_prefix_indexed=True,
    )
    probe = select(attributes.c.entity_id).where(
        attributes.c.name == VOCAB + "airQualityLevel", compare(target, Operator.EQUAL, value)
    )
    compiled = probe.compile(
        dialect=city.engine.dialect,
        schema_translate_map={None: city.schema},
        render_schema_translate=True,
    )
    with city.engine.connect() as connection, connection.begin():
        # The seeded city is tiny: without these the planner rightly reads the whole table.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params)
        plan = [str(row[0]) for row in rows]
    assert "attributes_name_text" in plan[0], plan
    [condition] = [line for line in plan if "Index Cond" in line]
    assert '"left"(value_text, 256)' in condition, plan
