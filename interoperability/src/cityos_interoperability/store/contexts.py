"""Hosted @contexts (``POST /jsonldContexts``): stored per tenant, served by URL."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from cityos_interoperability.store.tables import DEFAULT_TENANT, jsonld_contexts

#: The path under which the broker serves the contexts it hosts.
HOSTED_PATH = "/ngsi-ld/v1/jsonldContexts/"

_HOSTED_URL = re.compile(r"^https?://[^/]+/ngsi-ld/v1/jsonldContexts/([A-Za-z0-9\-]+)$")


@dataclass(frozen=True)
class HostedContext:
    id: str
    tenant: str | None
    document: dict[str, Any]
    created_at: datetime
    hits: int
    last_used_at: datetime | None


def _tenant_key(tenant: str | None) -> str:
    return DEFAULT_TENANT if tenant is None else tenant


class HostedContexts:
    """The ``cityos_interop.jsonld_contexts`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, tenant: str | None, document: dict[str, Any]) -> HostedContext:
        context_id = str(uuid.uuid4())
        with self._engine.begin() as connection:
            row = connection.execute(
                insert(jsonld_contexts)
                .values(id=context_id, tenant=_tenant_key(tenant), document=document)
                .returning(*jsonld_contexts.c)
            ).one()
        return _hosted(row._mapping)

    def get(self, tenant: str | None, context_id: str) -> HostedContext | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*jsonld_contexts.c).where(
                    jsonld_contexts.c.id == context_id,
                    jsonld_contexts.c.tenant == _tenant_key(tenant),
                )
            ).first()
        return None if row is None else _hosted(row._mapping)

    def list(self, tenant: str | None) -> list[HostedContext]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(*jsonld_contexts.c)
                .where(jsonld_contexts.c.tenant == _tenant_key(tenant))
                .order_by(jsonld_contexts.c.created_at, jsonld_contexts.c.id)
            ).all()
        return [_hosted(row._mapping) for row in rows]

    def delete(self, tenant: str | None, context_id: str) -> bool:
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(jsonld_contexts).where(
                    jsonld_contexts.c.id == context_id,
                    jsonld_contexts.c.tenant == _tenant_key(tenant),
                )
            )
        return bool(result.rowcount)

    def lookup_url(self, url: str) -> dict[str, Any] | None:
        """The document a hosted-context URL names (any tenant), counting the use."""
        match = _HOSTED_URL.match(url)
        if match is None:
            return None
        with self._engine.begin() as connection:
            row = connection.execute(
                update(jsonld_contexts)
                .where(jsonld_contexts.c.id == match.group(1))
                .values(hits=jsonld_contexts.c.hits + 1, last_used_at=func.now())
                .returning(jsonld_contexts.c.document)
            ).first()
        return None if row is None else dict(row[0])


def _hosted(row: Any) -> HostedContext:
    tenant = row["tenant"]
    return HostedContext(
        id=row["id"],
        tenant=None if tenant == DEFAULT_TENANT else tenant,
        document=dict(row["document"]),
        created_at=row["created_at"],
        hits=int(row["hits"]),
        last_used_at=row["last_used_at"],
    )
