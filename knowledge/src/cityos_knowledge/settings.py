"""Settings of the knowledge layer (``CITYOS_KNOWLEDGE_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from cityos_kernel.settings import CityosSettings


class KnowledgeSettings(CityosSettings):
    """Stores, ingest and outbox relay settings."""

    knowledge_compress_after: str = Field(
        default="7 days",
        description="TimescaleDB only: compress history chunks older than this interval.",
    )
    knowledge_retention: str | None = Field(
        default=None,
        description="Drop history older than this PostgreSQL interval (unset keeps all). "
        "The configuration repository's `retention` key wins once it has been written.",
    )
    knowledge_partitions_ahead: int = Field(
        default=3,
        ge=1,
        le=24,
        description="Without TimescaleDB: monthly history partitions kept created ahead.",
    )
    knowledge_ingest_batch: int = Field(
        default=2000, ge=1, description="Observations messages the ingest consumer applies at once."
    )
    knowledge_ingest_consumers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Members of the knowledge-ingest consumer group run by a knowledge process "
        "(threads; they share the topic's partitions).",
    )
    knowledge_relay_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Longest wait of the outbox relay between two looks at the outbox "
        "(it is woken at once by a NOTIFY from the writing transaction).",
    )
    knowledge_relay_coalesce_seconds: float = Field(
        default=0.005,
        ge=0,
        le=0.05,
        description="While events keep coming, the outbox relay waits this long after "
        "publishing before it looks again, so that the events of several commits go out "
        "together; the first event after a quiet spell goes out at once.",
    )
    knowledge_patch_linger_seconds: float = Field(
        default=0.0005,
        ge=0,
        le=0.01,
        description="While partial updates (PATCH of one attribute) keep coming, a batch "
        "that would hold fewer than two of them waits this long for more before it is "
        "applied: larger batches, less work per update. An update after a quiet spell waits "
        "for nothing; 0 never waits.",
    )
    knowledge_default_vocabulary: str = Field(
        default="https://uri.etsi.org/ngsi-ld/default-context/",
        description="Prefix that expands the short attribute names and types of observations "
        "(what the NGSI-LD core context does with an unknown term).",
    )
