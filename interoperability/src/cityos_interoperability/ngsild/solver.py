"""Solving an NGSI-LD route's parameters and dependencies from a plan made once per route.

FastAPI's ``solve_dependencies`` re-derives, on every request, what a route's dependency tree
looks like: cache keys, whether each call is a generator, each parameter's aliases, whether
its annotation is a sequence, a pydantic model, JSON... For the NGSI-LD routes (a header,
a permission, a data scope, a few optional query strings) that was about a fifth of an API
process's Python time under PATCH load, more than the dependencies' own work
(docs/performance.md, Interoperability; ADR 0056).

:func:`plan_route` walks a route's dependant once and keeps what a request needs: per
dependency its call, its cache key and its own plan; per parameter where to read it and
whether it is a plain string (``str`` or ``str | None`` without constraints), which is taken
from the request as it is, exactly as pydantic would return it. Every other parameter is
validated by FastAPI's own per-parameter function, so its value and its errors are
FastAPI's. Dependencies are called in FastAPI's order, each once per request (its cache),
and validation errors are collected the same way and raised as the same
:class:`RequestValidationError`. A route using anything the plan does not model (a body
parameter, cookies, background tasks, a response parameter, security scopes, synchronous
dependencies, parameter models, a declared response model) keeps FastAPI's handler, and so
does any request while dependency overrides are set or FastAPI's telemetry is active.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import params
from fastapi.dependencies.models import (  # FastAPI's own dispatch state (ADR 0056)
    Dependant,
    _get_cache_key,
    _is_async_gen_callable,
    _is_coroutine_callable,
    _is_gen_callable,
    _uses_scopes,
)
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _get_param_model,
    _is_json_field,
    _solve_generator,
    get_typed_return_annotation,
    request_params_to_args,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var, _extract_endpoint_context
from fastapi.telemetry import get_telemetry_data
from pydantic.fields import FieldInfo
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

Source = Literal["path", "query", "header"]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_PLAIN_STRINGS = (str, str | None)
_NO_QUERY = QueryParams()


#: No default shared between requests (required, validated, made by a factory, mutable).
_NO_SHARED_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class _Parameter:
    """One path, query or header parameter of a dependant."""

    field: Any  # fastapi's ModelField
    source: Source
    #: The request key it is read from; None: FastAPI reads it (not a plain string).
    key: str | None
    #: The value when absent, if the same for every request (FastAPI deep-copies the
    #: default, and a copy of an immutable one is itself).
    default: Any = _NO_SHARED_DEFAULT

    def read(self, received: Mapping[str, Any], values: dict[str, Any], errors: list[Any]) -> None:
        if self.key is not None:
            value = received.get(self.key)
            if value is not None:
                values[self.field.name] = value
                return
            if self.default is not _NO_SHARED_DEFAULT:
                values[self.field.name] = self.default
                return
            field_info: FieldInfo = self.field.field_info
            if not field_info.is_required() and not field_info.validate_default:
                values[self.field.name] = copy.deepcopy(self.field.default)
                return
        found, found_errors = request_params_to_args([self.field], received)
        values.update(found)
        errors.extend(found_errors)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What solving one dependant takes: its sub-dependencies, parameters and request."""

    dependant: Dependant
    call: Callable[..., Any]
    name: str | None
    cache_key: Any
    use_cache: bool
    generator: bool
    scope: str | None
    dependencies: tuple[_Plan, ...]
    path: tuple[_Parameter, ...]
    query: tuple[_Parameter, ...]
    header: tuple[_Parameter, ...]
    request_name: str | None

    async def solve(
        self, request: Request, cache: dict[Any, Any]
    ) -> tuple[dict[str, Any], list[Any]]:
        """The values for this dependant's call and the validation errors, as FastAPI's."""
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for dependency in self.dependencies:
            sub_values, sub_errors = await dependency.solve(request, cache)
            if sub_errors:
                errors.extend(sub_errors)
                continue
            if dependency.use_cache and dependency.cache_key in cache:
                solved = cache[dependency.cache_key]
            elif dependency.generator:
                key = "fastapi_function_astack" if dependency.scope == "function" else None
                stack = request.scope[key or "fastapi_inner_astack"]
                assert isinstance(stack, AsyncExitStack)
                solved = await _solve_generator(
                    request=request,
                    dependant=dependency.dependant,
                    stack=stack,
                    sub_values=sub_values,
                )
            else:
                solved = await dependency.call(**sub_values)
            if dependency.name is not None:
                values[dependency.name] = solved
            if dependency.cache_key not in cache:
                cache[dependency.cache_key] = solved
        # FastAPI's order: path, query, header (values and errors alike).
        for parameter in self.path:
            parameter.read(request.path_params, values, errors)
        if self.query:
            # Without a query string every query parameter is absent: nothing to parse.
            query = request.query_params if request.scope.get("query_string") else _NO_QUERY
            for parameter in self.query:
                parameter.read(query, values, errors)
        if self.header:
            headers = request.headers
            for parameter in self.header:
                parameter.read(headers, values, errors)
        if self.request_name is not None:
            values[self.request_name] = request
        return values, errors


def _parameter(field: Any, source: Source) -> _Parameter:
    field_info = field.field_info
    aliases = _get_param_aliases(field)
    plain = (
        field_info.annotation in _PLAIN_STRINGS
        and not field_info.metadata
        and len(aliases) == 1
        and not _is_json_field(field)
        and isinstance(field_info, params.Param)
    )
    if not plain:
        return _Parameter(field, source, None)
    default: Any = _NO_SHARED_DEFAULT
    if (
        not field_info.is_required()
        and not field_info.validate_default
        and field_info.default_factory is None
        and (field_info.default is None or isinstance(field_info.default, str | int | float))
    ):
        default = field_info.default
    return _Parameter(field, source, aliases[0][1], default)


def _plan(dependant: Dependant, *, endpoint: bool) -> _Plan | None:
    """The plan of ``dependant``, or None when it uses what a plan does not model."""
    call = dependant.call
    if (
        call is None
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.concurrency is not None
        or _uses_scopes(dependant=dependant)
        or _is_gen_callable(call)
        or any(
            _get_param_model(field) is not None
            for field in (
                *dependant.path_params,
                *dependant.query_params,
                *dependant.header_params,
            )
        )
    ):
        return None
    generator = _is_async_gen_callable(call)
    if not endpoint and not generator and not _is_coroutine_callable(call):
        return None  # FastAPI would run it in its thread pool
    dependencies = []
    for sub_dependant in dependant.dependencies:
        sub_plan = _plan(sub_dependant, endpoint=False)
        if sub_plan is None:
            return None
        dependencies.append(sub_plan)
    return _Plan(
        dependant=dependant,
        call=call,
        name=dependant.name,
        cache_key=_get_cache_key(dependant=dependant),
        use_cache=dependant.use_cache,
        generator=generator,
        scope=dependant.scope,
        dependencies=tuple(dependencies),
        path=tuple(_parameter(field, "path") for field in dependant.path_params),
        query=tuple(_parameter(field, "query") for field in dependant.query_params),
        header=tuple(_parameter(field, "header") for field in dependant.header_params),
        request_name=dependant.request_param_name,
    )


def planned_handler(route: APIRoute, fallback: Handler) -> Handler:
    """``route``'s request handler solved by a plan, or ``fallback`` (FastAPI's) as it is.

    The planned handler serves routes whose endpoint is a coroutine returning a
    :class:`Response` (so FastAPI would neither validate nor serialize what it returns) and
    whose request body is read by the route itself.
    """
    # FastAPI builds the handler of a route included in a router with the route's effective
    # context current (its dependant includes the routers' dependencies): plan that one.
    effective = _effective_route_context_var.get()
    source: Any = (
        effective if effective is not None and effective.original_route is route else route
    )
    dependant: Dependant = source.dependant
    endpoint = dependant.call
    if (
        endpoint is None
        or source.body_field is not None
        or source.response_field is not None
        or not _is_coroutine_callable(endpoint)
        or not _returns_response(endpoint)
    ):
        return fallback
    plan = _plan(dependant, endpoint=True)
    if plan is None:
        return fallback
    overrides_provider = source.dependency_overrides_provider
    call: Callable[..., Awaitable[Response]] = endpoint

    async def handle(request: Request) -> Response:
        if getattr(overrides_provider, "dependency_overrides", None) or (
            get_telemetry_data() is not None
        ):
            return await fallback(request)
        values, errors = await plan.solve(request, {})
        if errors:
            context = _extract_endpoint_context(endpoint)
            if dependant.path:
                mount_path = request.scope.get("root_path", "").rstrip("/")
                context["path"] = f"{request.method} {mount_path}{dependant.path}"
            raise RequestValidationError(errors, body=None, endpoint_ctx=context)
        return await call(**values)

    return handle


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    annotation = get_typed_return_annotation(endpoint)
    return isinstance(annotation, type) and issubclass(annotation, Response)
