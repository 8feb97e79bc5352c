"""HTTP southbound: devices post measures (``/iot/json``, ``/iot/d``) and poll commands.

The answer is 200 only after the bus confirmed the observations (or the dead letter of a
rejected input). Devices authenticate with their apikey and device id, as with the IoT
Agents, so these routes are public to the platform's OAuth layer (ADR 0021).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from cityos_acquisition.api.provisioning import iot_error
from cityos_acquisition.codecs.ultralight import format_ultralight_command
from cityos_acquisition.commands.pending import PendingCommand, PendingCommandStore
from cityos_acquisition.commands.status import command_status_observation
from cityos_acquisition.ingest import metrics
from cityos_acquisition.ingest.encoding import observation_record
from cityos_acquisition.ingest.inbound import Inbound, PayloadKind
from cityos_acquisition.ingest.pipeline import IngestPipeline
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_kernel.bus.port import Bus, PublishError, Record
from cityos_support.security import public

_STATUS_FOR_REASON = {"unknown_device": 404}

ApikeyQuery = Annotated[str, Query(alias="k", min_length=1, description="the apikey")]
DeviceQuery = Annotated[str, Query(alias="i", min_length=1, description="the device id")]
TimeQuery = Annotated[str | None, Query(alias="t", description="ISO 8601 time of the measures")]
GetCmdQuery = Annotated[int, Query(alias="getCmd", description="1: answer pending commands")]


def _delivered_records(profile: DeviceProfile, commands: list[PendingCommand]) -> list[Record]:
    now = datetime.now(UTC)
    return [
        observation_record(
            command_status_observation(
                profile, command.command, "DELIVERED", at=now, entity_id=command.entity_id
            ),
            tenant=profile.tenant,
            source="acquisition:http",
        )
        for command in commands
    ]


def _commands_body(profile: DeviceProfile, commands: list[PendingCommand], ul: bool) -> str:
    if ul:
        return "#".join(
            format_ultralight_command(profile.device_id, c.command, c.params) for c in commands
        )
    return orjson.dumps({c.command: c.params for c in commands}).decode()


def southbound_router(
    pipeline: IngestPipeline, bus: Bus, pending: PendingCommandStore
) -> APIRouter:
    router = APIRouter(
        prefix="/iot", tags=["acquisition: devices"], dependencies=[Depends(public())]
    )

    def publish(records: list[Record]) -> None:
        if records:
            with metrics.BATCH_SECONDS.labels("http").time():
                bus.publish(records)

    def ingest(
        kind: PayloadKind,
        resource: str,
        payload: bytes,
        apikey: str,
        device_id: str,
        device_time: str | None,
        get_cmd: int,
    ) -> Response:
        inbound = Inbound(
            transport="http",
            kind=kind,
            payload=payload,
            received_at=datetime.now(UTC),
            topic=resource,
            apikey=apikey,
            device_id=device_id,
            resource=resource,
            device_time=device_time,
        )
        poll_only = not payload and get_cmd == 1
        outcome = pipeline.process(inbound) if not poll_only else None
        records = list(outcome.records) if outcome else []
        body = ""
        try:
            if get_cmd == 1 and (outcome is None or outcome.rejected is None):
                profile = (
                    outcome.profile
                    if outcome
                    else pipeline.registry.resolve(apikey, device_id, resource=resource)
                )
                assert profile is not None
                # The commands count as delivered only once the bus confirmed their status
                # together with this request's observations (ADR 0027).
                commands = pending.deliver(
                    profile.tenant,
                    profile.device_id,
                    lambda commands: publish(records + _delivered_records(profile, commands)),
                )
                body = _commands_body(profile, commands, ul=kind == "ul")
            else:
                publish(records)
        except PublishError as exc:
            metrics.PUBLISH_FAILURES.labels("http").inc()
            return iot_error(503, "BUS_UNAVAILABLE", f"not stored, retry: {exc}")
        if outcome is not None and outcome.rejected is not None:
            code = _STATUS_FOR_REASON.get(outcome.reason_kind or "", 400)
            name = "DEVICE_NOT_FOUND" if code == 404 else "BAD_PAYLOAD"
            return iot_error(code, name, outcome.rejected)
        if outcome is not None:
            pipeline.accepted(inbound, outcome)
        return Response(body, media_type="text/plain" if kind == "ul" else "application/json")

    @router.post("/json", operation_id="iot_json_measures")
    async def json_measures(
        request: Request,
        k: ApikeyQuery,
        i: DeviceQuery,
        t: TimeQuery = None,
        get_cmd: GetCmdQuery = 0,
    ) -> Response:
        """A device sends JSON measures."""
        payload = await request.body()
        return await run_in_threadpool(ingest, "json", "/iot/json", payload, k, i, t, get_cmd)

    @router.api_route("/d", methods=["GET", "POST"], operation_id="iot_ul_measures")
    async def ultralight_measures(
        request: Request,
        k: ApikeyQuery,
        i: DeviceQuery,
        d: Annotated[str | None, Query(description="UltraLight measures (GET)")] = None,
        t: TimeQuery = None,
        get_cmd: GetCmdQuery = 0,
    ) -> Response:
        """A device sends UltraLight 2.0 measures (and may poll its commands)."""
        payload = d.encode() if d is not None else await request.body()
        return await run_in_threadpool(ingest, "ul", "/iot/d", payload, k, i, t, get_cmd)

    return router
