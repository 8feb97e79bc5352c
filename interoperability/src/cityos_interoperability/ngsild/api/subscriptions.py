"""``/subscriptions`` and ``/subscriptions/{subscriptionId}`` (GS CIM 009 5.8; 6.10, 6.11).

The subscription body is read like an entity body (media type, size, @context from the
body or the Link header); checking it and storing it is
:class:`cityos_interoperability.subscriptions.service.SubscriptionService`'s job.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cityos_interoperability.ngsild.api.common import OptionsParam, request_terms
from cityos_interoperability.ngsild.body import read_document
from cityos_interoperability.ngsild.errors import ServiceUnavailableError, TooManyResultsError
from cityos_interoperability.ngsild.negotiation import (
    JSON,
    JSON_LD,
    JSON_REPRESENTATIONS,
    MERGE_PATCH,
    VERSION_PREFERENCE,
    choose_representation,
    preferred_version,
)
from cityos_interoperability.ngsild.representation import parse_options
from cityos_interoperability.ngsild.responses import json_response, no_content
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.ngsild.tenant import TenantDep
from cityos_interoperability.subscriptions.service import SubscriptionService
from cityos_support.security import data_scope, require
from cityos_support.security.policy import DataScope

PATH = "/ngsi-ld/v1/subscriptions"

SUBSCRIPTION_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": {"type": "object", "required": ["type", "notification"]}},
        JSON_LD: {"schema": {"type": "object", "required": ["type", "notification", "@context"]}},
    },
}
FRAGMENT_BODY = {
    "required": True,
    "content": {media_type: {"schema": {"type": "object"}} for media_type in (JSON, JSON_LD)},
}

READ = [Depends(require("subscriptions:read"))]
WRITE = [Depends(require("subscriptions:write"))]
#: The writer's data scope: it limits the notifications of what it creates or updates.
WriterScope = Annotated[DataScope, Depends(data_scope("subscriptions:write"))]


def page_links(limit: int, offset: int, total: int) -> list[str]:
    """``Link`` values to the previous and next pages (6.3.10)."""
    links = []
    if offset > 0 and limit > 0:
        previous = max(offset - limit, 0)
        links.append(f'<{PATH}?limit={limit}&offset={previous}>;rel="prev";type="{JSON_LD}"')
    if limit > 0 and offset + limit < total:
        links.append(f'<{PATH}?limit={limit}&offset={offset + limit}>;rel="next";type="{JSON_LD}"')
    return links


def apply_version_preference(request: Request, response: Response) -> Response:
    """Honour ``Prefer: ngsi-ld=<version>`` (6.3.6) on a subscription read.

    The earlier-version fallbacks of 4.3.6.8 concern Entity data only: a Subscription reads
    the same in every version, so the preference is applied by changing nothing.
    """
    version = preferred_version(request.headers.get("prefer"))
    if version is not None:
        response.headers["Preference-Applied"] = f"{VERSION_PREFERENCE}={version}"
    return response


def build(services: ApiServices, store: SubscriptionService | None) -> APIRouter:
    """The routes; ``store`` is None in a process without a database (they answer 503)."""
    router = APIRouter(route_class=services.route_class, tags=["Subscriptions"])
    settings = services.settings

    def subscriptions_of() -> SubscriptionService:
        if store is None:
            raise ServiceUnavailableError("subscriptions need a database; none is configured")
        return store

    @router.post(
        "/subscriptions",
        operation_id="createSubscription",
        status_code=201,
        dependencies=WRITE,
        openapi_extra={"requestBody": SUBSCRIPTION_BODY},
        responses={201: {"description": "Created; Location names the subscription"}},
    )
    async def create_subscription(
        request: Request, tenant: TenantDep, scope: WriterScope
    ) -> Response:
        """Create a subscription."""
        subscriptions = subscriptions_of()
        document = await read_document(request, max_bytes=settings.max_request_bytes)
        subscription_id = await run_in_threadpool(
            lambda: subscriptions.create(tenant, document.body, document.context, scope=scope)
        )
        return Response(status_code=201, headers={"Location": f"{PATH}/{subscription_id}"})

    @router.get("/subscriptions", operation_id="querySubscription", dependencies=READ)
    async def query_subscriptions(
        request: Request,
        tenant: TenantDep,
        limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        count: bool = False,
        options: OptionsParam = None,
    ) -> Response:
        """List the tenant's subscriptions, a page at a time."""
        subscriptions = subscriptions_of()
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        _, flags = parse_options(options, None)
        page_size = settings.default_page_size if limit is None else limit
        if page_size > settings.max_page_size:
            raise TooManyResultsError(
                f"limit {page_size} is more than the maximum page size {settings.max_page_size}"
            )
        terms = await request_terms(services, request)

        def read() -> tuple[list[dict[str, object]], int]:
            found, total = subscriptions.page(tenant, limit=page_size, offset=offset)
            return [
                subscriptions.to_json(item, terms, sys_attrs="sysAttrs" in flags) for item in found
            ], total

        items, total = await run_in_threadpool(read)
        headers = {}
        if count:
            headers["NGSILD-Results-Count"] = str(total)
        response = json_response(items, media_type=media_type, terms=terms, headers=headers)
        for link in page_links(page_size, offset, total):
            response.headers.append("Link", link)
        return apply_version_preference(request, response)

    @router.get(
        "/subscriptions/{subscriptionId}", operation_id="retrieveSubscription", dependencies=READ
    )
    async def retrieve_subscription(
        request: Request,
        subscriptionId: str,  # noqa: N803
        tenant: TenantDep,
        options: OptionsParam = None,
    ) -> Response:
        """Retrieve one subscription with its notification status."""
        subscriptions = subscriptions_of()
        media_type = choose_representation(request.headers.get("accept"), JSON_REPRESENTATIONS)
        _, flags = parse_options(options, None)
        terms = await request_terms(services, request)
        body = await run_in_threadpool(
            lambda: subscriptions.to_json(
                subscriptions.get(tenant, subscriptionId), terms, sys_attrs="sysAttrs" in flags
            )
        )
        response = json_response(body, media_type=media_type, terms=terms)
        return apply_version_preference(request, response)

    @router.patch(
        "/subscriptions/{subscriptionId}",
        operation_id="updateSubscription",
        status_code=204,
        dependencies=WRITE,
        openapi_extra={"requestBody": FRAGMENT_BODY},
    )
    async def update_subscription(
        request: Request,
        subscriptionId: str,  # noqa: N803
        tenant: TenantDep,
        scope: WriterScope,
    ) -> Response:
        """Update members of a subscription (pause or resume it with isActive)."""
        subscriptions = subscriptions_of()
        # 6.3.4: a PATCH also takes application/merge-patch+json (its @context: Link).
        document = await read_document(
            request, max_bytes=settings.max_request_bytes, accepted=(JSON, JSON_LD, MERGE_PATCH)
        )
        await run_in_threadpool(
            lambda: subscriptions.update(tenant, subscriptionId, document.body, scope=scope)
        )
        return no_content()

    @router.delete(
        "/subscriptions/{subscriptionId}",
        operation_id="deleteSubscription",
        status_code=204,
        dependencies=WRITE,
    )
    async def delete_subscription(subscriptionId: str, tenant: TenantDep) -> Response:  # noqa: N803
        """Delete a subscription."""
        subscriptions = subscriptions_of()
        await run_in_threadpool(subscriptions.delete, tenant, subscriptionId)
        return no_content()

    return router
