"""The acquisition layer's settings (``CITYOS_ACQUISITION_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cityos_kernel.settings import CityosSettings


class AcquisitionSettings(CityosSettings):
    """How the acquisition layer connects to devices and network servers."""

    model_config = SettingsConfigDict(env_prefix="CITYOS_ACQUISITION_", extra="ignore", frozen=True)

    mqtt_client_id: str = Field(
        default="cityos-acquisition",
        description="MQTT client id; with a persistent session the broker keeps unacknowledged "
        "messages for it across restarts, so each replica needs its own id.",
    )
    mqtt_shared_group: str | None = Field(
        default=None,
        description="Subscribe as $share/<group>/... so replicas split the device traffic "
        "(MQTT 5 shared subscriptions).",
    )
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        default="3.1.1",
        description="MQTT protocol of the ingestion client. 3.1.1 decodes about twice as fast "
        "in paho; 5 adds ReceiveMaximum flow control and a session expiry.",
    )
    mqtt_max_inflight: int = Field(
        default=1000, ge=1, description="Messages received but not yet acknowledged, at most."
    )
    batch_max: int = Field(
        default=500, ge=1, description="Observations published to the bus in one batch."
    )
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="How long a batch waits to fill before it is published."
    )
    gc_threshold: int = Field(
        default=10_000,
        ge=0,
        description="Garbage-collector generation-0 threshold set when the MQTT ingestion "
        "starts (never lowered; 0 leaves the interpreter's). Ingestion allocates many "
        "short-lived objects; with CPython's default of 700 the older generations are "
        "collected so often that they cost ~40% of the pipeline's CPU (ADR 0025).",
    )
    registry_cache_ttl: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a device lookup is cached (changes made "
        "through this process's API clear it at once).",
    )
    chirpstack: bool = Field(default=True, description="Subscribe to ChirpStack v4 uplinks.")
    things_stack: bool = Field(default=True, description="Subscribe to The Things Stack v3.")
    health_check_interval: float = Field(
        default=30.0, gt=0, description="Seconds between device silence checks."
    )
