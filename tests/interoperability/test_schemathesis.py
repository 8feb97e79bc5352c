"""Property-based requests from the OpenAPI document: the NGSI-LD API never answers 5xx.

Bounded: a few examples per operation, no deadline, so the whole run stays within seconds.
The application is the real one (knowledge facade on PostgreSQL behind the routes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from tests.fixtures.interoperability import API_LAYERS


@pytest.fixture(scope="module")
def ngsi_schema(postgres_server: EmbeddedPostgres, interop_template: str) -> Iterator[Any]:
    name = "test_io_schemathesis"
    postgres_server.create_database(name, template=interop_template)
    platform = build_platform(
        PlatformSettings(env="development", auth="off"),
        load_layers(API_LAYERS),
        database_url=postgres_server.url(name),
        bus=MemoryBus(),
    )
    app = create_app(platform, manage_lifecycle=False)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app).include(
            path_regex="^/ngsi-ld/v1/"
        )
    finally:
        platform.stop()
        postgres_server.drop_database(name)


@pytest.mark.postgres
def test_no_server_errors(ngsi_schema: Any) -> None:
    operations = [result.ok() for result in ngsi_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def no_server_error(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)

        no_server_error()
