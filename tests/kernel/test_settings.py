from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from cityos_kernel.settings import CityosSettings, PlatformSettings


class ExampleLayerSettings(CityosSettings):
    client_secret: SecretStr = SecretStr("changeme")


def test_platform_settings_read_the_shared_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS_ENV", "production")
    monkeypatch.setenv("CITYOS_DATABASE_URL", "postgresql://u:s3cr3t@db/cityos")
    monkeypatch.setenv("CITYOS_BUS", "kafka")
    monkeypatch.setenv("CITYOS_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("CITYOS_MQTT_URL", "mqtt://broker:1883")
    monkeypatch.setenv("CITYOS_AUTH", "keycloak")
    monkeypatch.setenv("CITYOS_AUTH_ISSUER", "https://id.city/realms/cityos")
    settings = PlatformSettings()
    assert settings.bus == "kafka"
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"
    assert settings.database_dsn() == "postgresql://u:s3cr3t@db/cityos"
    assert "s3cr3t" not in repr(settings)
    assert settings.auth_issuer == "https://id.city/realms/cityos"


def test_defaults_are_the_all_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CITYOS_ENV", "CITYOS_BUS", "CITYOS_DATABASE_URL", "CITYOS_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = PlatformSettings()
    assert (settings.env, settings.bus, settings.auth) == ("development", "memory", "off")
    assert settings.database_url is None and settings.mqtt_url is None


def test_placeholder_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS_ENV", "production")
    with pytest.raises(ValidationError, match="CITYOS_CLIENT_SECRET holds a placeholder"):
        ExampleLayerSettings()
    monkeypatch.setenv("CITYOS_CLIENT_SECRET", "a-real-long-secret")
    assert ExampleLayerSettings().client_secret.get_secret_value() == "a-real-long-secret"


def test_placeholder_secret_is_accepted_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS_ENV", "development")
    assert ExampleLayerSettings().client_secret.get_secret_value() == "changeme"


def test_unknown_bus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOS_BUS", "rabbit")
    with pytest.raises(ValidationError, match="memory"):
        PlatformSettings()
