"""``<cmd>_status`` and ``<cmd>_info`` observations, as the IoT Agents report commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.mapping.mapper import device_entity_id
from cityos_acquisition.mapping.observation import Attribute, Observation

CommandStatus = Literal["PENDING", "DELIVERED", "OK", "ERROR"]


def command_status_observation(
    profile: DeviceProfile,
    command: str,
    status: CommandStatus,
    *,
    at: datetime,
    info: Any = None,
    entity_id: str | None = None,
) -> Observation:
    attributes = [Attribute(name=f"{command}_status", value=status, observed_at=at)]
    if info is not None:
        attributes.append(Attribute(name=f"{command}_info", value=info, observed_at=at))
    return Observation(
        entity_id=entity_id or device_entity_id(profile),
        entity_type=profile.entity_type,
        attributes=attributes,
        device_id=profile.device_id,
        received_at=at,
    )
