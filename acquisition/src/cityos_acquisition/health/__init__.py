"""Device health: last seen, message rate, battery and RSSI, and silence detection."""

from __future__ import annotations
