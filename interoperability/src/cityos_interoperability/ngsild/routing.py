"""The route class every NGSI-LD route uses: preconditions and error translation.

A router cannot carry exception handlers (they belong to the application, which the
runtime owns), so :class:`NgsiLdRoute` wraps each route's handler instead. Before the
handler it enforces what clause 6.3 asks of every request — Content-Length on POST, PATCH
and PUT (a bare 411), the body size limit (413), no unknown query parameters (400
InvalidRequestError) — and around it turns every error into a ProblemDetails response:
:class:`NgsiLdError` as it is, FastAPI's validation errors as InvalidRequestError, the security
seam's HTTP errors by status, the knowledge facade's domain errors by
:func:`translate_domain_error`, and anything unexpected as a logged 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from cityos_interoperability.ngsild.errors import (
    InternalError,
    InvalidRequestError,
    LengthRequiredError,
    NgsiLdError,
    PayloadTooLargeError,
    error_for_status,
    problem_response,
)
from cityos_interoperability.ngsild.solver import planned_handler
from cityos_interoperability.ngsild.tenant import TENANT_HEADER

logger = logging.getLogger(__name__)

#: Default body limit; the layer's settings replace it (``CITYOS_INTEROP_MAX_REQUEST_BYTES``).
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024

_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})

#: Turns a knowledge-facade error into an NGSI-LD one (None: not a domain error).
DomainErrorTranslator = Callable[[Exception], NgsiLdError | None]


def _no_domain_errors(exc: Exception) -> NgsiLdError | None:
    return None


class NgsiLdRoute(APIRoute):
    """An APIRoute that answers every failure with an NGSI-LD ProblemDetails body."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    translate_domain_error: DomainErrorTranslator = staticmethod(_no_domain_errors)
    #: Solve parameters and dependencies from a plan made once (:mod:`.solver`, ADR 0056).
    solve_by_plan: bool = True
    planned: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed_query = frozenset(
            param.alias for param in self.dependant.query_params
        ) | frozenset(
            param.alias
            for dependency in _all_dependencies(self.dependant)
            for param in dependency.query_params
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.solve_by_plan:
            fastapi_handler = handler
            handler = planned_handler(self, fastapi_handler)
            #: Whether this route's requests are solved by a plan (else by FastAPI).
            self.planned = handler is not fastapi_handler

        async def handle(request: Request) -> Response:
            response = await answer(request)
            # 6.3.14: a request's NGSILD-Tenant header is also present in the response,
            # errors included (a NonexistentTenant answer names the tenant it looked for).
            tenant = request.headers.get(TENANT_HEADER)
            if tenant:
                response.headers[TENANT_HEADER] = tenant
            return response

        async def answer(request: Request) -> Response:
            try:
                self._check_preconditions(request)
                return await handler(request)
            except NgsiLdError as exc:
                return problem_response(exc)
            except RequestValidationError as exc:
                return problem_response(InvalidRequestError(_describe_validation(exc)))
            except HTTPException as exc:
                return problem_response(
                    error_for_status(exc.status_code, str(exc.detail), dict(exc.headers or {}))
                )
            except Exception as exc:
                translated = self.translate_domain_error(exc)
                if translated is not None:
                    return problem_response(translated)
                logger.exception("%s %s failed", request.method, request.url.path)
                return problem_response(
                    InternalError(f"internal error ({type(exc).__name__}); see the server log")
                )

        return handle

    def _check_preconditions(self, request: Request) -> None:
        if request.method in _BODY_METHODS:
            length = request.headers.get("content-length")
            if length is None:
                raise LengthRequiredError("Content-Length is required")
            try:
                size = int(length)
            except ValueError as exc:
                raise InvalidRequestError("Content-Length is not a number") from exc
            if size > self.max_request_bytes:
                raise PayloadTooLargeError(
                    f"the request body has {size} bytes; the limit is {self.max_request_bytes}"
                )
        if not request.scope.get("query_string"):
            return
        unknown = sorted(set(request.query_params) - self.allowed_query)
        if unknown:
            raise InvalidRequestError(f"unknown query parameter(s): {', '.join(unknown)}")


def _all_dependencies(dependant: Any) -> list[Any]:
    found: list[Any] = []
    for dependency in dependant.dependencies:
        found.append(dependency)
        found.extend(_all_dependencies(dependency))
    return found


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(item) for item in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def route_class(
    *, max_request_bytes: int, translate: DomainErrorTranslator | None = None
) -> type[NgsiLdRoute]:
    """A route class bound to one layer's settings (each build gets its own)."""
    attributes: dict[str, Any] = {"max_request_bytes": max_request_bytes}
    if translate is not None:
        attributes["translate_domain_error"] = staticmethod(translate)
    return type("ConfiguredNgsiLdRoute", (NgsiLdRoute,), attributes)
