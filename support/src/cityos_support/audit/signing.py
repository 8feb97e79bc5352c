"""Ed25519 signatures of audit checkpoints.

The signing key is a 32-byte seed given as base64 in ``CITYOS_AUDIT_SIGNING_KEY``; its key
id is the first 16 hex digits of the SHA-256 of the public key. Development without a key
uses a fixed, publicly known seed — fine for trying things out, worthless as evidence — and
production refuses to start without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cityos_kernel.errors import ConfigurationError
from cityos_support.audit.chain import Checkpoint
from cityos_support.settings import SupportSettings

logger = logging.getLogger(__name__)

_DEVELOPMENT_SEED = hashlib.sha256(b"cityos development audit key - not a secret").digest()


def checkpoint_message(tenant: str, seq: int, record_hash: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return f"cityos-audit-checkpoint\n{tenant}\n{seq}\n{record_hash}".encode()


class CheckpointSigner:
    """Signs and verifies checkpoints with one Ed25519 key."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ConfigurationError("the audit signing key must be a 32-byte Ed25519 seed")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_bytes = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = hashlib.sha256(self.public_bytes).hexdigest()[:16]

    @classmethod
    def from_settings(cls, settings: SupportSettings) -> CheckpointSigner:
        if settings.audit_signing_key is None:
            if settings.env == "production":
                raise ConfigurationError(
                    "CITYOS_AUDIT_SIGNING_KEY is required in production "
                    "(base64 of 32 random bytes: `head -c32 /dev/urandom | base64`)"
                )
            logger.warning("audit checkpoints are signed with the public development key")
            return cls(_DEVELOPMENT_SEED)
        try:
            seed = base64.b64decode(settings.audit_signing_key.get_secret_value(), validate=True)
        except binascii.Error as exc:
            raise ConfigurationError("CITYOS_AUDIT_SIGNING_KEY is not valid base64") from exc
        return cls(seed)

    def sign(self, tenant: str, seq: int, record_hash: str) -> str:
        signature = self._private.sign(checkpoint_message(tenant, seq, record_hash))
        return base64.b64encode(signature).decode("ascii")

    def verify(self, checkpoint: Checkpoint) -> bool:
        """True when the checkpoint was signed by this key over exactly its content."""
        if checkpoint.key_id != self.key_id:
            return False
        try:
            self._private.public_key().verify(
                base64.b64decode(checkpoint.signature),
                checkpoint_message(checkpoint.tenant, checkpoint.seq, checkpoint.record_hash),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True
