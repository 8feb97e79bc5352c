"""The ``NGSILD-Tenant`` header (GS CIM 009 6.3.14): which tenant a request works on."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header

from cityos_interoperability.ngsild.errors import BadRequestDataError

TENANT_HEADER = "NGSILD-Tenant"

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$")


async def tenant_from_header(
    ngsild_tenant: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="The tenant to work on; the default tenant when absent.",
        ),
    ] = None,
) -> str | None:
    """The tenant named by the request, ``None`` for the default tenant.

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in its
    thread pool, a thread hop on every NGSI-LD request for a regex match.
    """
    if ngsild_tenant is None or ngsild_tenant == "":
        return None
    if not _TENANT.match(ngsild_tenant):
        raise BadRequestDataError(
            f"tenant {ngsild_tenant!r} is not a valid tenant name "
            "(letters, digits, '_' and '-', at most 63 characters)"
        )
    return ngsild_tenant


TenantDep = Annotated[str | None, Depends(tenant_from_header)]
