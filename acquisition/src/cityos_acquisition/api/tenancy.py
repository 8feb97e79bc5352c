"""FIWARE and NGSI-LD tenancy headers → the platform's tenant and service path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from cityos_acquisition.registry.service import Scope
from cityos_kernel.events.envelope import DEFAULT_TENANT

#: Service paths meaning "every service path" on reads.
_ANY_PATH = frozenset({"/*", "/#"})


def tenant_from(ngsild_tenant: str | None, fiware_service: str | None) -> str:
    """``NGSILD-Tenant`` wins, then ``Fiware-Service`` (lower-cased, as FIWARE does)."""
    if ngsild_tenant and ngsild_tenant.strip():
        return ngsild_tenant.strip()
    if fiware_service and fiware_service.strip():
        return fiware_service.strip().lower()
    return DEFAULT_TENANT


async def scope_from_headers(
    fiware_service: Annotated[str | None, Header(alias="Fiware-Service")] = None,
    fiware_service_path: Annotated[str | None, Header(alias="Fiware-ServicePath")] = None,
    ngsild_tenant: Annotated[str | None, Header(alias="NGSILD-Tenant")] = None,
) -> Scope:
    """The tenant and service path of a request (no service path: every one, on reads).

    ``async`` because it does no I/O: FastAPI would run a plain ``def`` in its thread
    pool, a thread hop on every ``/iot`` request."""
    path = fiware_service_path.strip() if fiware_service_path else None
    return Scope(
        tenant=tenant_from(ngsild_tenant, fiware_service),
        service_path=None if not path or path in _ANY_PATH else path,
    )


ScopeDep = Annotated[Scope, Depends(scope_from_headers)]
