"""Pure payload codecs: bytes in, measures out. No I/O, no registry, no bus.

Every decoder raises :class:`DecodeError` with a human-readable reason on bad input; the
ingestion pipeline turns that reason into a dead letter.
"""

from __future__ import annotations

from cityos_acquisition.codecs.errors import DecodeError

__all__ = ["DecodeError"]
