"""Commands to actuators: from ``knowledge.commands.v1`` to the device, status back."""

from __future__ import annotations
