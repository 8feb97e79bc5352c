"""The device simulator behind ``cityos simulate`` (and the demo and benchmarks)."""

from __future__ import annotations

from cityos_acquisition.simulator.kinds import KINDS
from cityos_acquisition.simulator.run import SimulationProgress, run_simulation

__all__ = ["KINDS", "SimulationProgress", "run_simulation"]
