"""Error base classes every layer derives from; edges translate them (API, consumers)."""

from __future__ import annotations


class CityosError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigurationError(CityosError):
    """The platform is configured in a way it cannot run with."""


class DependencyUnavailableError(CityosError):
    """A service the platform needs (database, broker) cannot be reached."""
