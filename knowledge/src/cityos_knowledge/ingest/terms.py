"""Expansion of the short names observations carry into the IRIs the stores keep.

Observations use Smart Data Models' short names (``temperature``, ``WeatherObserved``).
The NGSI-LD API expands a client's terms with its ``@context``; a term no context defines
falls to the core context's ``@vocab``. The ingest does the same with a configurable
vocabulary, and knows the core context's own attribute names (``location``…), so that a
client using the core context finds what the ingest wrote.
"""

from __future__ import annotations

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"

#: Terms of the NGSI-LD core context that name attributes.
CORE_TERMS: dict[str, str] = {
    "location": NGSI_LD + "location",
    "observationSpace": NGSI_LD + "observationSpace",
    "operationSpace": NGSI_LD + "operationSpace",
    "description": "http://purl.org/dc/terms/description",
}


def expand_term(term: str, vocabulary: str) -> str:
    """An absolute IRI (or compact IRI) stays; a core term maps; anything else gets the vocab."""
    if ":" in term:
        return term
    return CORE_TERMS.get(term, vocabulary + term)
