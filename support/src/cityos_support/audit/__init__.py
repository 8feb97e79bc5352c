"""Audit (non-repudiation): events on ``support.audit.v1`` kept in a hash-chained table."""

from __future__ import annotations

from cityos_support.audit.emitter import AuditEmitter

__all__ = ["AuditEmitter"]
