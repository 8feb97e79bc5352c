"""The ingestion service: raw device input → observations or dead letters, as bus records."""

from __future__ import annotations
