"""Configuration values as a running process sees them: read, cached, refreshed.

A :class:`LiveValue` holds the current value of one key of the repository, validated
against the key's model, and re-reads it when older than its refresh interval or when told
that the key changed (a ``support.config.changed.v1`` message, :meth:`LiveValue.apply`). A
process therefore picks up a change without restart: at once where it consumes the topic,
within the refresh interval everywhere else. If the database cannot be read, the last good
value stays in force (logged), so a database hiccup never turns into "no policies".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cityos_support.config.repository import ConfigRepository

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class LiveValue(Generic[M]):
    """The current, validated value of one configuration key."""

    def __init__(
        self,
        key: str,
        model: type[M],
        default: M,
        *,
        repository: ConfigRepository | None,
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self._model = model
        self._value = default
        self._default = default
        self._repository = repository
        self._refresh = refresh_seconds
        self._clock = clock
        self._loaded_at: float | None = None
        self.version = 0
        self._lock = threading.Lock()

    def __call__(self) -> M:
        return self.get()

    @property
    def is_stale(self) -> bool:
        """True when :meth:`get` would read the repository (so may block)."""
        if self._repository is None:
            return False
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._refresh

    def get(self) -> M:
        """The value in force, re-read from the repository when stale."""
        with self._lock:
            stale = self._loaded_at is None or self._clock() - self._loaded_at >= self._refresh
            if stale and self._repository is not None:
                self._reload()
            return self._value

    def apply(self, version: int, value: Any) -> bool:
        """Take a broadcast change (newer versions only); True when it was applied."""
        with self._lock:
            if version <= self.version:
                return False
            parsed = self._parse(value)
            if parsed is None:
                return False
            self._value, self.version = parsed, version
            self._loaded_at = self._clock()
            return True

    def _reload(self) -> None:
        assert self._repository is not None
        try:
            entry = self._repository.get(self.key)
        except SQLAlchemyError as exc:
            # The driver's first line says why; the SQL and its parameters are noise here.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            logger.error(
                "cannot read configuration key %r (has `cityos db upgrade` run?), "
                "keeping version %d: %s",
                self.key,
                self.version,
                reason,
            )
            self._loaded_at = self._clock()
            return
        self._loaded_at = self._clock()
        if entry is None:
            self._value, self.version = self._default, 0
            return
        parsed = self._parse(entry.value)
        if parsed is not None:
            self._value, self.version = parsed, entry.version

    def _parse(self, value: Any) -> M | None:
        try:
            return self._model.model_validate(value)
        except ValidationError as exc:
            logger.error("ignoring invalid value of %s: %s", self.key, exc)
            return None
