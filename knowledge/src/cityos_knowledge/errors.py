"""Domain errors of the knowledge layer, each naming its NGSI-LD problem type.

The API maps them to ProblemDetails (``type`` = :attr:`KnowledgeError.problem_type`,
``status`` = :attr:`KnowledgeError.status`, ``detail`` = the message); consumers map them to
dead letters. Nothing below the edges catches them.
"""

from __future__ import annotations

from typing import ClassVar

from cityos_kernel.errors import CityosError

_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


class KnowledgeError(CityosError):
    """Base of the knowledge layer's domain errors."""

    problem_type: ClassVar[str] = _ERRORS + "InternalError"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500


class InvalidRequestError(KnowledgeError):
    """The request is malformed (syntax, unknown parameter combination)."""

    problem_type = _ERRORS + "InvalidRequest"
    title = "Invalid request"
    status = 400


class BadRequestDataError(KnowledgeError):
    """The request is well formed but its data is not acceptable (bad GeoJSON, bad id)."""

    problem_type = _ERRORS + "BadRequestData"
    title = "Bad request data"
    status = 400


class NotFoundError(KnowledgeError):
    """The entity, attribute or instance does not exist (ResourceNotFound)."""

    problem_type = _ERRORS + "ResourceNotFound"
    title = "Resource not found"
    status = 404


class NonexistentTenantError(NotFoundError):
    """A read names a tenant that has never been written to."""

    problem_type = _ERRORS + "NonexistentTenant"
    title = "Nonexistent tenant"


class AlreadyExistsError(KnowledgeError):
    """An entity with this id already exists."""

    problem_type = _ERRORS + "AlreadyExists"
    title = "Already exists"
    status = 409


class OperationNotSupportedError(KnowledgeError):
    """The operation is understood but not supported for these data."""

    problem_type = _ERRORS + "OperationNotSupported"
    title = "Operation not supported"
    status = 422


class NotAvailableOnThisDatabaseError(OperationNotSupportedError):
    """The operation needs a database extension (TimescaleDB toolkit) this database lacks."""

    title = "Not available on this database"
    status = 501


class TooManyResultsError(KnowledgeError):
    """The query would return more results than allowed."""

    problem_type = _ERRORS + "TooManyResults"
    title = "Too many results"
    status = 403
