"""Transports: they only move bytes between the outside and the ingestion pipeline."""

from __future__ import annotations
