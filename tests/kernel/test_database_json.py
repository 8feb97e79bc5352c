"""The platform's engines decode json/jsonb with orjson, exactly as ``json.loads`` would."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from cityos_kernel.database import create_pooled_engine, loads_json

#: Texts where orjson alone would differ from json.loads or refuse them.
AWKWARD = [
    '{"big": 123456789012345678901234567890}',  # beyond 64 bits: orjson gives a float
    "-9999999999999999999",  # 19 digits, below the smallest int64
    "18446744073709551616",  # 2**64
    '{"x": "1234567890123456789012 in a string"}',
    "1e400",  # orjson refuses infinity
    '["\\ud800"]',  # a lone surrogate, escaped
    "[1.7976931348623157e308, 5e-324, -0.0, 0.1, 1E5]",
    '{"\\u00e9t\\u00e9": "Êté ☀", "nested": {"a": [1, 2.5, null, true, false, {}]}}',
    "9223372036854775807",  # the largest int64: orjson's own path
]


@pytest.mark.parametrize("document", AWKWARD)
def test_loads_json_agrees_with_json_loads(document: str) -> None:
    decoded = loads_json(document)
    expected = json.loads(document)
    assert decoded == expected
    assert json.dumps(decoded) == json.dumps(expected)  # same types: int stays int


def test_loads_json_rejects_what_json_loads_rejects() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_json('{"a": ')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_pooled_engine(database_url, pool_size=1, max_overflow=0)
    yield created
    created.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("column", ["json", "jsonb"])
def test_a_pooled_engine_decodes_json_columns_like_json_loads(engine: Engine, column: str) -> None:
    document = '{"big": 123456789012345678901234567890, "small": 42, "x": [1.5, "é", null]}'
    with engine.connect() as connection:
        decoded = connection.execute(text(f"SELECT CAST(:doc AS {column})"), {"doc": document})
        value = decoded.scalar_one()
        # Also on the DBAPI cursor, as the knowledge facade reads query pages.
        with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(f"SELECT CAST(%s AS {column})", (document,))
            raw = cursor.fetchone()[0]
    assert engine.dialect._json_deserializer is loads_json
    assert value == raw == json.loads(document)
    assert isinstance(value["big"], int) and isinstance(raw["big"], int)
