"""A client of the application whose temporal answers hold at most 5 instances per attribute."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cityos.embedded import EmbeddedPostgres
from tests.interoperability.subscriptions.conftest import platform_client

MAX_INSTANCES = 5


@pytest.fixture(scope="module")
def temporal_client(
    postgres_server: EmbeddedPostgres, interop_template: str
) -> Iterator[TestClient]:
    environment = {"CITYOS_INTEROP_TEMPORAL_MAX_INSTANCES": str(MAX_INSTANCES)}
    with platform_client(postgres_server, interop_template, environment) as client:
        yield client
