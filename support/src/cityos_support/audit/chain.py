"""The hash chain of the audit log, as pure functions (no database here).

Each record's *content hash* is the SHA-256 of its canonical JSON (sorted keys, UTC times in
ISO 8601) — tenant and sequence number included, so a record cannot be moved. Its *record
hash* is SHA-256 over the previous record's hash and its own content hash, so changing,
inserting or removing any record changes every hash after it. Each tenant has its own chain,
starting from :data:`GENESIS`.

A chain alone only proves consistency: someone able to rewrite the table could rewrite
every hash after the record they changed. Signed checkpoints (:mod:`.signing`) pin the
record hash at a sequence number with a key the database does not hold; verification
checks the chain against them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64

#: The fields whose values are hashed, in the order they are listed in the table.
HASHED_FIELDS = (
    "tenant",
    "seq",
    "event_id",
    "event_time",
    "recorded_at",
    "source",
    "subject",
    "client",
    "action",
    "target",
    "outcome",
    "correlation_id",
    "details",
)


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return (
        value if isinstance(value, (str, int, float, bool, dict, list, type(None))) else str(value)
    )


def content_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of a record's hashed fields, as canonical JSON."""
    canonical = {name: _normalise(fields[name]) for name in HASHED_FIELDS}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def link_hash(previous_hash: str, own_content_hash: str) -> str:
    """The record hash: SHA-256 of the previous record hash followed by the content hash."""
    return hashlib.sha256(f"{previous_hash}{own_content_hash}".encode("ascii")).hexdigest()


@dataclass(frozen=True)
class StoredRecord:
    """A record as read back from the table, with the hashes stored next to it."""

    fields: Mapping[str, Any]
    content_hash: str
    previous_hash: str
    record_hash: str

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain of ``tenant`` had ``record_hash`` at ``seq``."""

    tenant: str
    seq: int
    record_hash: str
    signed_at: datetime
    key_id: str
    signature: str


@dataclass(frozen=True)
class ChainBreak:
    """The first place where a tenant's chain does not verify."""

    tenant: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"tenant {self.tenant}, record {self.seq}: {self.reason}"


def verify_chain(
    tenant: str,
    records: Iterable[StoredRecord],
    checkpoints: Mapping[int, str] | None = None,
) -> tuple[int, ChainBreak | None]:
    """Walk one tenant's records in sequence order; returns (records checked, first break).

    ``checkpoints`` maps sequence numbers to the record hashes that valid signed checkpoints
    pinned; a chain that is consistent but disagrees with one has been rewritten.
    """
    pinned = dict(checkpoints or {})
    previous = GENESIS
    expected_seq = 1
    checked = 0
    for record in records:
        checked += 1
        if record.seq != expected_seq:
            reason = f"expected record {expected_seq}, found {record.seq} (records missing)"
            return checked, ChainBreak(tenant, expected_seq, reason)
        if record.fields["tenant"] != tenant:
            return checked, ChainBreak(tenant, record.seq, "record belongs to another tenant")
        if content_hash(record.fields) != record.content_hash:
            return checked, ChainBreak(tenant, record.seq, "content does not match its hash")
        if record.previous_hash != previous:
            return checked, ChainBreak(tenant, record.seq, "does not follow the previous record")
        if link_hash(previous, record.content_hash) != record.record_hash:
            return checked, ChainBreak(tenant, record.seq, "record hash does not match")
        if record.seq in pinned and pinned.pop(record.seq) != record.record_hash:
            return checked, ChainBreak(tenant, record.seq, "differs from a signed checkpoint")
        previous = record.record_hash
        expected_seq += 1
    if pinned:
        seq = min(pinned)
        return checked, ChainBreak(tenant, seq, "a signed checkpoint names a record that is gone")
    return checked, None
