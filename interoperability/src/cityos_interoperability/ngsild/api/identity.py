"""``/info/sourceIdentity`` (GS CIM 009 V1.9.1 5.15.1, 6.33): who this Context Source is."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from cityos_interoperability.ngsild.api.common import request_terms
from cityos_interoperability.ngsild.api.entities import READ
from cityos_interoperability.ngsild.negotiation import JSON_REPRESENTATIONS, choose_representation
from cityos_interoperability.ngsild.responses import json_response
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep


def iso_duration(seconds: float) -> str:
    """``PT3723.5S`` style ISO 8601 duration."""
    return f"PT{seconds:.3f}S"


def build(services: ApiServices) -> APIRouter:
    router = APIRouter(route_class=services.route_class, tags=["Context source identity"])
    started = time.monotonic()
    host = socket.gethostname()
    identity = uuid.uuid5(uuid.NAMESPACE_DNS, f"cityos.{host}")

    @router.get("/info/sourceIdentity", operation_id="retrieveSourceIdentity", dependencies=READ)
    async def source_identity(request: Request, tenant: TenantDep) -> Response:
        """Identify this context source: id, alias (per tenant), uptime and clock."""
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        terms = await request_terms(services, request)
        alias = f"urn:ngsi-ld:cityos:{host}" + (f":tenant:{tenant}" if tenant else "")
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {
            "id": f"urn:ngsi-ld:ContextSourceIdentity:{identity}",
            "type": "ContextSourceIdentity",
            "contextSourceExtras": {"software": "cityos"},
            "contextSourceUptime": iso_duration(time.monotonic() - started),
            "contextSourceTimeAt": now,
            "contextSourceAlias": alias,
        }
        return json_response(body, media_type=media_type, terms=terms)

    return router
