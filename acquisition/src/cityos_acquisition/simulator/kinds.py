"""The simulated city sensors: what each kind measures, how, and over which protocol."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Protocol = Literal["json", "ul", "chirpstack", "tts"]
Measures = Callable[[random.Random, int], dict[str, Any]]


def _wave(seq: int, period: int, low: float, high: float, rng: random.Random) -> float:
    """A daily-looking cycle with noise, so charts look like a real sensor."""
    phase = math.sin(2 * math.pi * (seq % period) / period)
    return round(low + (high - low) * (phase + 1) / 2 + rng.gauss(0, (high - low) * 0.03), 2)


@dataclass(frozen=True)
class DeviceKind:
    name: str
    entity_type: str
    protocol: Protocol
    measures: Measures
    #: Seconds between two messages of a real device of this kind (the expected interval).
    interval: float = 60.0
    #: Attribute mappings provisioned for the kind (object_id → Smart Data Models name).
    attributes: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _air(rng: random.Random, seq: int) -> dict[str, Any]:
    return {
        "t": _wave(seq, 96, 8, 28, rng),
        "h": _wave(seq + 30, 96, 35, 85, rng),
        "no2": max(0.0, _wave(seq, 48, 10, 80, rng)),
        "pm10": max(0.0, _wave(seq, 48, 5, 45, rng)),
        "pm2_5": max(0.0, _wave(seq, 48, 3, 25, rng)),
        "o3": max(0.0, _wave(seq + 20, 96, 20, 120, rng)),
    }


def _weather(rng: random.Random, seq: int) -> dict[str, Any]:
    return {
        "t": _wave(seq, 96, 5, 30, rng),
        "h": _wave(seq + 30, 96, 30, 90, rng),
        "p": _wave(seq, 500, 995, 1030, rng),
        "ws": max(0.0, _wave(seq, 37, 0, 12, rng)),
        "wd": rng.randrange(0, 360),
    }


def _noise(rng: random.Random, seq: int) -> dict[str, Any]:
    laeq = _wave(seq, 96, 38, 72, rng)
    return {"LAeq": laeq, "LAmax": round(laeq + rng.uniform(3, 15), 1)}


def _parking(rng: random.Random, seq: int) -> dict[str, Any]:
    return {"status": "occupied" if rng.random() < 0.6 else "free"}


def _traffic(rng: random.Random, seq: int) -> dict[str, Any]:
    intensity = max(0, int(_wave(seq, 96, 0, 900, rng)))
    return {
        "intensity": intensity,
        "occupancy": round(min(1.0, intensity / 1200), 3),
        "averageVehicleSpeed": round(max(5.0, 60 - intensity / 25 + rng.gauss(0, 3)), 1),
    }


def _streetlight(rng: random.Random, seq: int) -> dict[str, Any]:
    on = (seq % 96) < 40
    return {"powerState": "on" if on else "off", "illuminanceLevel": 0.8 if on else 0.0}


def _offstreet(rng: random.Random, seq: int) -> dict[str, Any]:
    return {"availableSpotNumber": max(0, int(_wave(seq, 96, 0, 250, rng)))}


def _water(rng: random.Random, seq: int) -> dict[str, Any]:
    # CayenneLPP records: (channel, type, value), decoded by the platform.
    return {
        "lpp": [
            (1, "temperature", _wave(seq, 96, 12, 22, rng)),
            (2, "analog_input", round(rng.uniform(6.8, 8.2), 2)),
            (3, "generic_sensor", rng.randrange(200, 800)),
        ]
    }


def _waste(rng: random.Random, seq: int) -> dict[str, Any]:
    return {
        "lpp": [
            (1, "percentage", min(100, (seq * 3 + rng.randrange(0, 5)) % 101)),
            (2, "temperature", _wave(seq, 96, 5, 35, rng)),
        ]
    }


KINDS: dict[str, DeviceKind] = {
    kind.name: kind
    for kind in (
        DeviceKind("air_quality", "AirQualityObserved", "json", _air, 60),
        DeviceKind("weather", "WeatherObserved", "ul", _weather, 60),
        DeviceKind("noise", "NoiseLevelObserved", "json", _noise, 60),
        DeviceKind("parking", "ParkingSpot", "ul", _parking, 300),
        DeviceKind("traffic", "TrafficFlowObserved", "json", _traffic, 60),
        DeviceKind("streetlight", "Streetlight", "ul", _streetlight, 300),
        DeviceKind("offstreet_parking", "OffStreetParking", "json", _offstreet, 120),
        DeviceKind(
            "water_quality",
            "WaterQualityObserved",
            "chirpstack",
            _water,
            600,
            (
                {"object_id": "temperature_1", "name": "temperature", "type": "Number",
                 "unitCode": "CEL"},
                {"object_id": "analog_input_2", "name": "pH", "type": "Number"},
                {"object_id": "generic_sensor_3", "name": "conductivity", "type": "Number",
                 "unitCode": "D10", "expression": "value / 1000"},
            ),
        ),
        DeviceKind(
            "waste",
            "WasteContainer",
            "tts",
            _waste,
            900,
            (
                {"object_id": "percentage_1", "name": "fillingLevel", "type": "Number",
                 "unitCode": "P1", "expression": "value / 100"},
                {"object_id": "temperature_2", "name": "temperature", "type": "Number",
                 "unitCode": "CEL"},
            ),
        ),
    )
}  # fmt: skip
