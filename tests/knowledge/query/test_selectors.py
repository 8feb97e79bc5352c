"""Type selections, scopeQ, id/attrs lists, pick/omit and orderBy parameters."""

from __future__ import annotations

import pytest

from cityos_knowledge.query.errors import InvalidQueryError
from cityos_knowledge.query.nodes import And, AttributePath, Or
from cityos_knowledge.query.selectors import (
    Direction,
    EntityType,
    OrderTerm,
    ScopePattern,
    parse_attribute_names,
    parse_ids,
    parse_order_by,
    parse_projection,
    parse_scope_query,
    parse_type_selection,
)

A, B, C = EntityType("A"), EntityType("B"), EntityType("C")


def test_type_lists_and_expressions() -> None:
    assert parse_type_selection("Streetlight") == EntityType("Streetlight")
    assert parse_type_selection("A,B,C") == Or((A, B, C))
    assert parse_type_selection("A|B") == Or((A, B))
    assert parse_type_selection("A;B") == And((A, B))
    assert parse_type_selection("(A;B)|C") == Or((And((A, B)), C))
    assert parse_type_selection("A,B;C") == Or((A, And((B, C))))
    assert parse_type_selection("A;(B,C)") == And((A, Or((B, C))))
    assert parse_type_selection("https://smartdatamodels.org/dataModel.Parking/ParkingSpot") == (
        EntityType("https://smartdatamodels.org/dataModel.Parking/ParkingSpot")
    )
    assert parse_type_selection("sdm:ParkingSpot") == EntityType("sdm:ParkingSpot")
    assert parse_type_selection("*") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A,", "expected a term, found the end"),
        ("(A;B", "expected '\\)'"),
        ("A B", "spaces are not allowed"),
        ("A,*", "'*' selects every type"),
        ("1Bad", "'1Bad' is not an entity type"),
        ("A;;B", "expected a term, found ';'"),
        ("", "the value is empty"),
    ],
)
def test_bad_type_selections(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message) as caught:
        parse_type_selection(text)
    assert caught.value.parameter == "type"


def test_scope_queries() -> None:
    parque = ScopePattern(("Madrid", "Gardens", "ParqueNorte"))
    company = ScopePattern(("CompanyA", "OrganizationB", "UnitC"))
    assert parse_scope_query("/Madrid/Gardens/ParqueNorte") == parque
    assert parse_scope_query("/Madrid/+/ParqueNorte") == ScopePattern(
        ("Madrid", "+", "ParqueNorte")
    )
    assert parse_scope_query("/CompanyA/#") == ScopePattern(("CompanyA",), descendants=True)
    assert parse_scope_query("/#") == ScopePattern((), descendants=True)
    assert parse_scope_query(f"{parque};{company}") == And((parque, company))
    assert parse_scope_query(f"{parque},{company}") == Or((parque, company))
    assert parse_scope_query(f"({parque};{company})|/CompanyB") == Or(
        (And((parque, company)), ScopePattern(("CompanyB",)))
    )
    assert parse_scope_query("/Москва/район_1") == ScopePattern(("Москва", "район_1"))
    assert str(ScopePattern(("a",), descendants=True)) == "/a/#"
    assert not ScopePattern(("a", "+")).is_exact


@pytest.mark.parametrize(
    ("text", "message", "character"),
    [
        ("Madrid", "a scope starts with '/'", 1),
        ("/Madrid//Gardens", "expected a scope level, found nothing", 9),
        ("/Madrid/#/Gardens", "'#' may only end a scope", 9),
        ("/Mad-rid", "expected a scope level, found 'Mad-rid'", 2),
        ("/a;", "expected a term", 4),
    ],
)
def test_bad_scope_queries(text: str, message: str, character: int) -> None:
    with pytest.raises(InvalidQueryError, match=message) as caught:
        parse_scope_query(text)
    assert caught.value.parameter == "scopeQ"
    assert caught.value.position == character - 1


def test_id_attrs_and_projection_lists() -> None:
    assert parse_ids("urn:ngsi-ld:Streetlight:1,urn:ngsi-ld:Streetlight:2") == (
        "urn:ngsi-ld:Streetlight:1",
        "urn:ngsi-ld:Streetlight:2",
    )
    assert parse_attribute_names("attrs", "speed,heading,speed") == ("speed", "heading")
    # 4.5.4: an attribute may be named by its full IRI as well as by a term.
    iri = "https://example.org/context#airQualityLevel"
    assert parse_attribute_names("attrs", f"{iri},speed") == (iri, "speed")
    assert parse_projection("pick", "id,type,speed") == ("id", "type", "speed")
    assert parse_projection("omit", "name|airQualityLevel") == ("name", "airQualityLevel")
    with pytest.raises(InvalidQueryError, match="is not an entity id"):
        parse_ids("not-a-uri")
    with pytest.raises(InvalidQueryError, match="expected ',' between items, found '\\|'"):
        parse_attribute_names("attrs", "a|b")
    with pytest.raises(InvalidQueryError, match="linked-entity projections"):
        parse_projection("pick", "owner{name}")
    with pytest.raises(InvalidQueryError, match="expected an entity member, found the end"):
        parse_projection("omit", "a,")


def test_order_by() -> None:
    name = AttributePath("name")
    assert parse_order_by("name") == (OrderTerm(name),)
    assert parse_order_by("type;asc,name.subProperty;desc,name;asc") == (
        OrderTerm(AttributePath("type")),
        OrderTerm(AttributePath("name", ("subProperty",)), Direction.DESC),
        OrderTerm(name),
    )
    assert parse_order_by("address[city];desc") == (
        OrderTerm(AttributePath("address", (), ("city",)), Direction.DESC),
    )
    assert parse_order_by("location;dist-asc")[0].direction.by_distance
    with pytest.raises(InvalidQueryError, match="expected asc, desc, dist-asc or dist-desc"):
        parse_order_by("name;up")
    with pytest.raises(InvalidQueryError, match="expected ',' or ';'"):
        parse_order_by("name|type")
