"""Defaults for common city sensors, following Smart Data Models attribute names and units.

When a device sends a measure its provisioning does not map, and its entity type is one of
these, the measure gets the Smart Data Models name, type and UN/CEFACT unit code: a weather
station that sends ``t`` and ``h`` produces ``temperature`` in ``CEL`` and
``relativeHumidity`` without any attribute written by hand. Short names and CayenneLPP
names (``temperature_1``) are recognised as aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttributeDefault:
    name: str
    type: str = "Number"
    unit_code: str | None = None


def _defaults(*items: AttributeDefault) -> dict[str, AttributeDefault]:
    return {item.name: item for item in items}


_TEMPERATURE = AttributeDefault("temperature", unit_code="CEL")
_HUMIDITY = AttributeDefault("relativeHumidity", unit_code="P1")
_BATTERY = AttributeDefault("batteryLevel", unit_code="P1")

SENSOR_DEFAULTS: dict[str, dict[str, AttributeDefault]] = {
    "AirQualityObserved": _defaults(
        _TEMPERATURE,
        _HUMIDITY,
        AttributeDefault("no2", unit_code="GQ"),
        AttributeDefault("no", unit_code="GQ"),
        AttributeDefault("nox", unit_code="GQ"),
        AttributeDefault("o3", unit_code="GQ"),
        AttributeDefault("so2", unit_code="GQ"),
        AttributeDefault("pm1", unit_code="GQ"),
        AttributeDefault("pm10", unit_code="GQ"),
        AttributeDefault("pm25", unit_code="GQ"),
        AttributeDefault("co", unit_code="GP"),
        AttributeDefault("co2", unit_code="59"),
        AttributeDefault("airQualityIndex"),
    ),
    "WeatherObserved": _defaults(
        _TEMPERATURE,
        _HUMIDITY,
        AttributeDefault("atmosphericPressure", unit_code="A97"),
        AttributeDefault("windSpeed", unit_code="MTS"),
        AttributeDefault("windDirection", unit_code="DD"),
        AttributeDefault("precipitation", unit_code="MMT"),
        AttributeDefault("illuminance", unit_code="LUX"),
        AttributeDefault("solarRadiation", unit_code="D54"),
        AttributeDefault("dewPoint", unit_code="CEL"),
        AttributeDefault("uVIndexMax"),
    ),
    "NoiseLevelObserved": _defaults(
        AttributeDefault("LAeq", unit_code="2N"),
        AttributeDefault("LAmax", unit_code="2N"),
        AttributeDefault("LAS", unit_code="2N"),
        AttributeDefault("LA90", unit_code="2N"),
    ),
    "ParkingSpot": _defaults(AttributeDefault("status", "Text")),
    "OffStreetParking": _defaults(
        AttributeDefault("availableSpotNumber", "Integer"),
        AttributeDefault("occupiedSpotNumber", "Integer"),
        AttributeDefault("totalSpotNumber", "Integer"),
    ),
    "TrafficFlowObserved": _defaults(
        AttributeDefault("intensity", "Integer"),
        AttributeDefault("occupancy", unit_code="P1"),
        AttributeDefault("averageVehicleSpeed", unit_code="KMH"),
        AttributeDefault("averageVehicleLength", unit_code="MTR"),
        AttributeDefault("congested", "Boolean"),
    ),
    "Streetlight": _defaults(
        AttributeDefault("powerState", "Text"),
        AttributeDefault("illuminanceLevel", unit_code="P1"),
        AttributeDefault("status", "Text"),
    ),
    "WasteContainer": _defaults(
        AttributeDefault("fillingLevel", unit_code="P1"),
        _TEMPERATURE,
        AttributeDefault("cargoWeight", unit_code="KGM"),
        AttributeDefault("status", "Text"),
    ),
    "WaterQualityObserved": _defaults(
        _TEMPERATURE,
        AttributeDefault("pH"),
        AttributeDefault("conductivity", unit_code="D10"),
        AttributeDefault("turbidity", unit_code="FTU"),
        AttributeDefault("O2", unit_code="M1"),
        AttributeDefault("orp", unit_code="2Z"),
    ),
    "Device": _defaults(
        _BATTERY,
        AttributeDefault("rssi", unit_code="2N"),
        AttributeDefault("snr", unit_code="2N"),
        AttributeDefault("frameCounter", "Integer"),
        AttributeDefault("value", "Text"),
    ),
}

#: Names devices commonly send, and CayenneLPP type names, for the default names above.
ALIASES: dict[str, str] = {
    "t": "temperature",
    "temp": "temperature",
    "h": "relativeHumidity",
    "hum": "relativeHumidity",
    "humidity": "relativeHumidity",
    "relative_humidity": "relativeHumidity",
    "p": "atmosphericPressure",
    "pressure": "atmosphericPressure",
    "barometric_pressure": "atmosphericPressure",
    "pm2_5": "pm25",
    "pm2.5": "pm25",
    "illuminance": "illuminance",
    "lux": "illuminance",
    "ws": "windSpeed",
    "wd": "windDirection",
    "rain": "precipitation",
    "noise": "LAeq",
    "laeq": "LAeq",
    "fill": "fillingLevel",
    "level": "fillingLevel",
    "occupied": "status",
    "free": "availableSpotNumber",
    "bat": "batteryLevel",
    "battery": "batteryLevel",
    "fCnt": "frameCounter",
    "ph": "pH",
    "concentration": "co2",
}
_LPP_CHANNEL = re.compile(r"^([a-z_]+)_(\d{1,3})$")


def default_attribute(entity_type: str, measure: str) -> AttributeDefault | None:
    """The Smart Data Models attribute for ``measure`` on ``entity_type``, if one fits."""
    known = SENSOR_DEFAULTS.get(entity_type)
    if known is None:
        return None
    if measure in known:
        return known[measure]
    candidates = [measure]
    match = _LPP_CHANNEL.match(measure)
    if match:
        candidates.append(match.group(1))
    for candidate in candidates:
        if candidate in known:
            return known[candidate]
        name = ALIASES.get(candidate) or ALIASES.get(candidate.lower())
        if name and name in known:
            return known[name]
    return None
