"""Config groups and devices in the FIWARE IoT Agent's JSON shape (the provisioning API).

The same models are what the registry stores (as JSONB), so a document written through the
API reads back as it was sent. Fields the IoT Agents accept but cityos does not use
(``cbroker``, ``timezone``, ``lazy``, ...) are kept as they came (``extra="allow"``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cityos_acquisition.expressions import ExpressionError, compile_expression

LORAWAN_DATA_MODELS = ("cayennelpp", "application_server", "raw")


def _check_expression(value: str | None) -> str | None:
    if value:
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise ValueError(f"invalid expression {value!r}: {exc.reason}") from exc
    return value


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AttributeIn(_Document):
    """An active attribute: ``object_id`` (what the device sends) → ``name``."""

    object_id: str | None = None
    name: str = Field(min_length=1)
    type: str = "Property"
    expression: str | None = None
    entity_name: str | None = None
    entity_type: str | None = None
    unit_code: str | None = Field(default=None, alias="unitCode")
    metadata: dict[str, Any] | None = None

    _expression = field_validator("expression")(_check_expression)

    def resolved_unit_code(self) -> str | None:
        """``unitCode`` directly, or inside ``metadata`` as the IoT Agents write it."""
        if self.unit_code:
            return self.unit_code
        unit = (self.metadata or {}).get("unitCode")
        if isinstance(unit, dict):
            value = unit.get("value")
            return str(value) if value else None
        return str(unit) if unit else None


class StaticAttributeIn(_Document):
    name: str = Field(min_length=1)
    type: str = "Property"
    value: Any = None
    unit_code: str | None = Field(default=None, alias="unitCode")


class CommandIn(_Document):
    name: str = Field(min_length=1)
    type: str = "command"


class LorawanIn(_Document):
    """LoRaWAN identifiers: how uplinks find the device and how its payload is decoded."""

    dev_eui: str | None = None
    application_id: str | None = None
    provider: str | None = Field(default=None, description="chirpstack or tts")
    data_model: str = "application_server"

    @model_validator(mode="before")
    @classmethod
    def _provider_from_application_server(cls, data: Any) -> Any:
        """The LoRaWAN IoT Agent nests the provider: ``application_server.provider``."""
        if isinstance(data, dict) and not data.get("provider"):
            server = data.get("application_server")
            if isinstance(server, dict) and server.get("provider"):
                return {**data, "provider": str(server["provider"]).lower()}
        return data

    @field_validator("dev_eui")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @field_validator("data_model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in LORAWAN_DATA_MODELS:
            raise ValueError(f"data_model must be one of {', '.join(LORAWAN_DATA_MODELS)}")
        return value


def lorawan_application_key(application_id: str | None) -> str | None:
    """What uplinks are matched by: The Things Stack's ``app@tenant`` is found as ``app``
    (its uplinks name the application without the tenant)."""
    return application_id.split("@", 1)[0] if application_id else None


def _internal_lorawan(data: Any) -> Any:
    """``internal_attributes.lorawan`` is where the LoRaWAN IoT Agent puts ``lorawan``."""
    if isinstance(data, dict) and "lorawan" not in data:
        internal = data.get("internal_attributes")
        if isinstance(internal, dict) and isinstance(internal.get("lorawan"), dict):
            return {**data, "lorawan": internal["lorawan"]}
    return data


class _Provisioned(_Document):
    entity_type: str | None = None
    attributes: list[AttributeIn] = Field(default_factory=list)
    static_attributes: list[StaticAttributeIn] = Field(default_factory=list)
    commands: list[CommandIn] = Field(default_factory=list)
    explicit_attrs: bool | list[str] | None = Field(default=None, alias="explicitAttrs")
    timestamp: bool | None = None
    expected_interval: float | None = Field(
        default=None, gt=0, description="seconds; a device silent for longer raises no_data"
    )


class GroupIn(_Provisioned):
    """A config group (``/iot/groups``), identified by ``resource`` and ``apikey``."""

    resource: str = "/iot/d"
    apikey: str = Field(min_length=1)
    autoprovision: bool = True
    entity_name_exp: str | None = Field(default=None, alias="entityNameExp")
    protocol: str | None = None
    transport: str | None = None
    #: A LoRaWAN application group: uplinks of unknown devices of ``application_id`` are
    #: autoprovisioned into it (with ``data_model``) when ``autoprovision`` is on.
    lorawan: LorawanIn | None = None

    _expression = field_validator("entity_name_exp")(_check_expression)
    _internal = model_validator(mode="before")(_internal_lorawan)


class DeviceIn(_Provisioned):
    """A device (``/iot/devices``)."""

    device_id: str = Field(min_length=1, pattern=r"^[^/#+\s]+$")
    entity_name: str | None = None
    apikey: str | None = None
    protocol: str | None = None
    transport: str | None = None
    lorawan: LorawanIn | None = None

    _internal = model_validator(mode="before")(_internal_lorawan)


class GroupsIn(BaseModel):
    """``POST /iot/groups`` body (``services`` is the IoT Agents' older name)."""

    groups: list[GroupIn] = Field(default_factory=list)
    services: list[GroupIn] = Field(default_factory=list)

    def all(self) -> list[GroupIn]:
        return [*self.groups, *self.services]


class DevicesIn(BaseModel):
    devices: list[DeviceIn] = Field(min_length=1)


class GroupUpdate(_Document):
    """``PUT /iot/groups``: the fields to change."""


class DeviceUpdate(_Document):
    """``PUT /iot/devices/{id}``: the fields to change."""
