"""``cityos up --simulate N``: simulated city sensors feeding the all-in-one platform.

The simulator is an ordinary MQTT client of the platform: it waits for the HTTP API to
answer, provisions its devices through ``/iot``, then publishes at the chosen rate until
the platform stops. It runs in its own thread so the server is never held up by it.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request

from cityos_acquisition.simulator import SimulationProgress, run_simulation
from cityos_kernel.errors import CityosError

logger = logging.getLogger(__name__)

#: Messages per second per simulated device: lively on a dashboard, light on a laptop.
RATE_PER_DEVICE = 0.2


class DemoTraffic:
    """A background simulator bound to one running platform."""

    name = "simulator"

    def __init__(self, *, mqtt_url: str, api_url: str, devices: int) -> None:
        self._mqtt_url = mqtt_url
        self._api_url = api_url
        self._devices = devices
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _wait_for_api(self) -> bool:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"{self._api_url}/health", timeout=2):  # noqa: S310
                    return True
            except (urllib.error.URLError, OSError):
                self._stop.wait(0.5)
        return False

    def _run(self) -> None:
        if not self._wait_for_api():
            return
        logger.info("simulating %d devices over %s", self._devices, self._mqtt_url)
        last_log = time.monotonic()

        def report(progress: SimulationProgress) -> None:
            nonlocal last_log
            if time.monotonic() - last_log >= 60:
                last_log = time.monotonic()
                logger.info("simulator: %d messages sent (%.1f/s)", progress.sent, progress.rate)

        try:
            run_simulation(
                self._mqtt_url,
                devices=self._devices,
                rate=self._devices * RATE_PER_DEVICE,
                api_url=self._api_url,
                progress=report,
                progress_every=5.0,
                stop=self._stop,
            )
        except (CityosError, OSError):
            logger.exception("the simulator stopped")
