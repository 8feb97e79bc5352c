"""Settings of the interoperability layer (``CITYOS_INTEROP_*`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cityos_kernel.settings import CityosSettings


class InteroperabilitySettings(CityosSettings):
    """NGSI-LD API settings."""

    model_config = SettingsConfigDict(env_prefix="CITYOS_INTEROP_", extra="ignore", frozen=True)

    max_request_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Largest request body the NGSI-LD API accepts; larger ones get 413.",
    )
    core_context_version: Literal["1.6", "1.8", "1.9"] = Field(
        default="1.8",
        description="The bundled ETSI core @context the API applies and links to by default.",
    )
    context_fetch_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Timeout of fetching a client's remote @context."
    )
    context_cache_seconds: float = Field(
        default=3600.0, ge=0, description="How long a fetched @context is reused."
    )
    context_max_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest remote @context document accepted."
    )
    context_url_map: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object: @context URLs starting with a key are fetched from the value "
        "instead (a local mirror); the URL itself stays the context's name.",
    )
    default_page_size: int = Field(default=20, ge=1, description="Query results per page.")
    max_page_size: int = Field(
        default=1000, ge=1, description="Largest `limit` a query may ask for (else 403)."
    )
    max_batch_entities: int = Field(
        default=1000, ge=1, description="Most entities one batch operation may carry."
    )

    # -- subscriptions and notifications --------------------------------------------------
    notification_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one notification request (HTTP or MQTT)."
    )
    notification_attempts: int = Field(
        default=3, ge=1, description="Attempts per notification before it counts as failed."
    )
    notification_backoff_seconds: float = Field(
        default=0.5, ge=0, description="Wait before the first retry; doubled for each next one."
    )
    notification_endpoint_concurrency: int = Field(
        default=4, ge=1, description="Notifications in flight at once to one endpoint."
    )
    notification_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Notifications waiting per endpoint; beyond it new ones fail at once.",
    )
    periodic_tick_seconds: float = Field(
        default=0.5, gt=0, description="How often due periodic (timeInterval) subscriptions run."
    )
    # -- temporal API ----------------------------------------------------------------------
    temporal_max_instances: int = Field(
        default=10000,
        ge=1,
        description="Most instances per attribute in one temporal answer (206 beyond it).",
    )
