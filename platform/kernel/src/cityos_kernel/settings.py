"""Settings shared by every layer, read from ``CITYOS_*`` environment variables.

Each layer declares its own settings class by subclassing :class:`CityosSettings`; the
names defined in :class:`PlatformSettings` are the ones operators and scripts rely on.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production"]

#: Values that mean "nobody chose a secret yet". Refused outside development.
PLACEHOLDER_SECRETS: frozenset[str] = frozenset(
    {
        "",
        "admin",
        "change-me",
        "changeme",
        "password",
        "placeholder",
        "secret",
        "test",
        "xxx",
    }
)


class PlaceholderSecretError(ValueError):
    """A secret setting still holds a placeholder value in production."""


class CityosSettings(BaseSettings):
    """Base for every settings class: ``CITYOS_`` prefix and the placeholder-secret guard."""

    model_config = SettingsConfigDict(env_prefix="CITYOS_", extra="ignore", frozen=True)

    env: Environment = Field(
        default="development",
        description="development relaxes secret checks and logs readably; production logs JSON.",
    )

    #: Secret fields that may legitimately be unset (None) in production.
    optional_secrets: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> CityosSettings:
        if self.env == "development":
            return self
        for name, value in self._secret_values():
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                env_name = f"{self.model_config.get('env_prefix', '')}{name}".upper()
                raise PlaceholderSecretError(
                    f"{env_name} holds a placeholder secret; set a real value "
                    "(placeholders are accepted only with CITYOS_ENV=development)"
                )
        return self

    def _secret_values(self) -> list[tuple[str, SecretStr]]:
        found: list[tuple[str, SecretStr]] = []
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if isinstance(value, SecretStr):
                found.append((name, value))
        return found


class PlatformSettings(CityosSettings):
    """The configuration names every layer shares."""

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL; unset means the all-in-one starts an embedded cluster.",
    )
    bus: Literal["memory", "kafka"] = Field(
        default="memory", description="memory (all-in-one) or kafka (distributed)."
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_partitions: int = Field(
        default=6, ge=1, description="Partitions for topics the platform creates."
    )
    kafka_replication_factor: int = Field(default=1, ge=1)
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://host:port of the broker; unset means the all-in-one starts one.",
    )
    auth: Literal["off", "keycloak"] = Field(
        default="off", description="off (development only) or keycloak (OpenID Connect)."
    )
    auth_issuer: str | None = Field(
        default=None, description="The Keycloak realm URL that issues access tokens."
    )
    log_level: str = Field(default="INFO")

    def database_dsn(self) -> str | None:
        """The database URL in clear, for the code that actually connects."""
        return None if self.database_url is None else self.database_url.get_secret_value()
