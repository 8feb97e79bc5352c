"""Accept / Content-Type / Link handling as clause 6.3.4-6.3.6 and RFC 9110 describe it."""

from __future__ import annotations

import pytest

from cityos_interoperability.ngsild.errors import BadRequestDataError, NotAcceptableError
from cityos_interoperability.ngsild.negotiation import (
    ENTITY_REPRESENTATIONS,
    JSON_REPRESENTATIONS,
    choose_representation,
    context_from_link_header,
    link_header,
    preferences,
    preferred_version,
    prefers_body_json,
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/ld+json, application/json", "application/json"),
        ("application/geo+json, application/json", "application/json"),
        ("application/json;q=0.1, application/ld+json;q=0.9", "application/ld+json"),
        ("application/ld+json", "application/ld+json"),
        ("application/json;q=0, */*", "application/ld+json"),
        ("*/*;q=0.9, application/ld+json;q=0.8", "application/json"),
        ("application/ld+json;q=notanumber", "application/ld+json"),
        ("application/geo+json", "application/geo+json"),
        ("application/*", "application/json"),
    ],
)
def test_entity_reads_choose_by_weight_then_list_order(accept: str | None, expected: str) -> None:
    assert choose_representation(accept, ENTITY_REPRESENTATIONS) == expected


def test_geojson_is_skipped_where_it_is_not_offered() -> None:
    accept = "application/geo+json;q=0.9, application/ld+json;q=0.1"
    assert choose_representation(accept, JSON_REPRESENTATIONS) == "application/ld+json"


@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/*", "application/json;q=0"])
def test_nothing_acceptable_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptableError) as caught:
        choose_representation(accept, JSON_REPRESENTATIONS)
    assert caught.value.status == 406


def test_link_header_round_trip() -> None:
    url = "https://example.org/ctx.jsonld"
    assert context_from_link_header(link_header(url)) == url
    assert context_from_link_header('<https://x/y>; rel="next"') is None
    assert context_from_link_header(None) is None


def test_two_context_links_are_bad_request_data() -> None:
    header = ", ".join(link_header(u) for u in ("https://a/1", "https://b/2"))
    with pytest.raises(BadRequestDataError):
        context_from_link_header(header)


def test_prefer_body_json() -> None:
    assert prefers_body_json("body=json")
    assert prefers_body_json("respond-async, body=json")
    assert not prefers_body_json(None)
    assert not prefers_body_json("return=minimal")


@pytest.mark.parametrize(
    ("prefer", "version"),
    [
        ("ngsi-ld=1.0", "1.0"),
        ("NGSI-LD=1.0", "1.0"),
        ("Ngsi-Ld=1.6", "1.6"),
        ('ngsi-ld="1.0"', "1.0"),
        ("ngsi-ld=1.0;q=0.1", "1.0"),
        ("respond-async, ngsi-ld=1.0", "1.0"),
        ('return=minimal; x="a,b", ngsi-ld=1.3', "1.3"),
        ("not a preference, ngsi-ld=1.4", "1.4"),
        ("respond-async", None),
        ("ngsi-ld=latest", None),
        ("ngsi-ld", None),
        (None, None),
    ],
)
def test_the_version_preference_in_any_rfc_7240_spelling(
    prefer: str | None, version: str | None
) -> None:
    assert preferred_version(prefer) == version


def test_the_first_of_a_preference_wins_and_quotes_are_removed() -> None:
    assert preferences('wait=10, Wait=20, x="a \\"b\\""') == {"wait": "10", "x": 'a "b"'}
