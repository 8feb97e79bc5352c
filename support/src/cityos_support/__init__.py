"""The support layer: security, audit, monitoring and the configuration repository."""

from __future__ import annotations
