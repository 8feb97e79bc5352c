"""NGSI-LD errors (ETSI GS CIM 009 clause 5.5.2) and their ProblemDetails bodies.

Every error the API answers with is an :class:`NgsiLdError`: its ``type`` URI and HTTP
status come from the spec's table of error types. The edges (``routing.NgsiLdRoute``) turn
these, FastAPI's validation errors and the knowledge facade's domain errors into
``ProblemDetails`` JSON (RFC 7807) — nothing else in the package builds an error response.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from starlette.responses import Response

from cityos_kernel.errors import CityosError

ERROR_TYPE_BASE = "https://uri.etsi.org/ngsi-ld/errors/"

#: RFC 7807 media type; NGSI-LD clients also accept it as JSON.
PROBLEM_MEDIA_TYPE = "application/json"


class NgsiLdError(Exception):
    """An error with an NGSI-LD problem type; ``detail`` says what was wrong, for a human."""

    type_name: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, instance: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.instance = instance

    @property
    def type_uri(self) -> str:
        return ERROR_TYPE_BASE + self.type_name

    def problem(self) -> dict[str, Any]:
        """The ProblemDetails body."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance:
            body["instance"] = self.instance
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequestError(NgsiLdError):
    """The request is not well formed: bad JSON, unknown parameter, wrong parameter syntax."""

    type_name = "InvalidRequest"
    status = 400
    title = "Invalid request"


class BadRequestDataError(NgsiLdError):
    """The request is well formed but its content is not acceptable (e.g. invalid entity)."""

    type_name = "BadRequestData"
    status = 400
    title = "Bad request data"


class ResourceNotFoundError(NgsiLdError):
    type_name = "ResourceNotFound"
    status = 404
    title = "Resource not found"


class NonexistentTenantError(NgsiLdError):
    type_name = "NonexistentTenant"
    status = 404
    title = "Tenant does not exist"


class AlreadyExistsError(NgsiLdError):
    type_name = "AlreadyExists"
    status = 409
    title = "Already exists"


class OperationNotSupportedError(NgsiLdError):
    type_name = "OperationNotSupported"
    status = 422
    title = "Operation not supported"


class TooComplexQueryError(NgsiLdError):
    type_name = "TooComplexQuery"
    status = 403
    title = "Query too complex"


class TooManyResultsError(NgsiLdError):
    type_name = "TooManyResults"
    status = 403
    title = "Too many results"


class LdContextNotAvailableError(NgsiLdError):
    """A remote @context could not be retrieved (5.5.2: 504, the broker acts as a gateway)."""

    type_name = "LdContextNotAvailable"
    status = 504
    title = "JSON-LD @context not available"


class InvalidLdContextError(BadRequestDataError):
    """A @context was retrieved but is not a valid JSON-LD context."""

    type_name = "BadRequestData"
    status = 400
    title = "Invalid JSON-LD @context"


class InternalError(NgsiLdError):
    type_name = "InternalError"
    status = 500
    title = "Internal error"


class NotAcceptableError(NgsiLdError):
    """No offered representation matches the Accept header (HTTP 406)."""

    type_name = "NotAcceptable"
    status = 406
    title = "Not acceptable"


class UnsupportedMediaTypeError(NgsiLdError):
    """The request body's Content-Type is not one the operation accepts (HTTP 415)."""

    type_name = "UnsupportedMediaType"
    status = 415
    title = "Unsupported media type"


class MethodNotAllowedError(NgsiLdError):
    type_name = "MethodNotAllowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLargeError(NgsiLdError):
    """The request body is larger than the configured limit (HTTP 413)."""

    type_name = "PayloadTooLarge"
    status = 413
    title = "Request body too large"


class LengthRequiredError(NgsiLdError):
    """POST, PATCH and PUT need a Content-Length (6.3.4); the answer has no body."""

    type_name = "LengthRequired"
    status = 411
    title = "Length required"


class UnauthorizedError(NgsiLdError):
    type_name = "Unauthorized"
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self._headers = headers or {}

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class ForbiddenError(NgsiLdError):
    type_name = "Forbidden"
    status = 403
    title = "Forbidden"


class ServiceUnavailableError(NgsiLdError):
    type_name = "ServiceUnavailable"
    status = 503
    title = "Service unavailable"


def problem_response(error: NgsiLdError) -> Response:
    """The HTTP response for ``error``: ProblemDetails JSON, or no body for a bare 411."""
    if isinstance(error, LengthRequiredError):
        return Response(status_code=error.status, headers=error.headers())
    body = error.problem()
    return Response(
        content=orjson.dumps(body),
        status_code=int(body["status"]),
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers(),
    )


def error_for_status(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> NgsiLdError:
    """Map a bare HTTP status (from Starlette or the security seam) to an NGSI-LD error."""
    if status == 401:
        return UnauthorizedError(detail, headers=headers)
    by_status: dict[int, type[NgsiLdError]] = {
        400: InvalidRequestError,
        403: ForbiddenError,
        404: ResourceNotFoundError,
        405: MethodNotAllowedError,
        406: NotAcceptableError,
        409: AlreadyExistsError,
        411: LengthRequiredError,
        413: PayloadTooLargeError,
        415: UnsupportedMediaTypeError,
        422: OperationNotSupportedError,
        503: ServiceUnavailableError,
    }
    return by_status.get(status, InternalError)(detail)


class DomainProblemError(NgsiLdError):
    """A knowledge-layer domain error carried to the client with its own problem type."""

    def __init__(self, type_uri: str, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self._type_uri = type_uri
        self._status = status
        self._title = title

    @property
    def type_uri(self) -> str:
        return self._type_uri

    def problem(self) -> dict[str, Any]:
        body = super().problem()
        body.update(type=self._type_uri, status=self._status, title=self._title)
        return body


def translate_domain_error(exc: Exception) -> NgsiLdError | None:
    """A platform domain error that names its NGSI-LD problem type and status, translated.

    The knowledge facade's errors (``cityos_knowledge.service``) declare ``problem_type``,
    ``title`` and ``status``; anything else is not a domain error (None).
    """
    if not isinstance(exc, CityosError):
        return None
    problem_type = getattr(exc, "problem_type", None)
    status = getattr(exc, "status", None)
    if not isinstance(problem_type, str) or not isinstance(status, int):
        return None
    title = getattr(exc, "title", None) or problem_type.rsplit("/", 1)[-1]
    return DomainProblemError(problem_type, status, str(title), str(exc) or str(title))
