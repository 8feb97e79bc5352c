"""The longest entity id, attribute name, datasetId, type and scope the store accepts.

These strings are btree index keys: ``attributes`` is keyed on (entity id, name,
datasetId), ``attribute_instances`` on the same three plus observedAt, and ``name`` leads
the value indexes. PostgreSQL refuses an index entry larger than about 2,700 bytes (a
third of an 8 kB page) with ``index row size … exceeds … maximum``, and that error fails the
whole transaction: one observation with a 3 kB entity id would fail its ingest batch on
every retry and block its bus partition. So each such string is limited to
:data:`MAX_KEY_BYTES` bytes of UTF-8, refused with BadRequestData (a 400 at the API, a dead
letter on the bus). Three of them at the limit plus a timestamp stay under the index's
maximum even when nothing compresses, which a per-string limit in characters could not
promise (a character takes up to 4 bytes).
"""

from __future__ import annotations

from cityos_knowledge.errors import BadRequestDataError

#: Bytes of UTF-8 per entity id, attribute name (expanded), datasetId, type or scope:
#: 3 x 768 + 8 (observedAt) + tuple headers is about 2,350 bytes, under btree's ~2,700.
MAX_KEY_BYTES = 768

#: Strings up to this many characters cannot exceed MAX_KEY_BYTES (4 bytes per character).
_SURELY_SHORT = MAX_KEY_BYTES // 4


def check_key_length(text: str, what: str) -> str:
    """``text`` if it fits :data:`MAX_KEY_BYTES`, else BadRequestData naming ``what``."""
    if len(text) <= _SURELY_SHORT:
        return text
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise BadRequestDataError(
            f"{what} {text[:60]!r}… is {size} bytes long; at most {MAX_KEY_BYTES} bytes "
            "(UTF-8) are accepted"
        )
    return text
