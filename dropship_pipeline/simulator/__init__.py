"""A local iQmetrix Dropship service for the demo, the tests and the benchmarks.

It follows ``docs/iqmetrix-dropship-api.md`` and is written apart from the pipeline's own client
and parser, so that it checks them rather than mirrors them::

    with SimulatorServer(SimulatorConfig(initial_orders=120)) as sim:
        sim.base_url                      # http://127.0.0.1:PORT/v1
        sim.state.add_orders(5)           # more orders, straight into the feed
        sim.state.set_faults({"rate_limit_every": 3})
"""

from dropship_pipeline.simulator.config import Faults, SimulatorConfig
from dropship_pipeline.simulator.generator import OrderGenerator, SimOrder
from dropship_pipeline.simulator.server import SimulatorServer
from dropship_pipeline.simulator.state import SimulatorState, UpdateRecord

__all__ = [
    "Faults",
    "OrderGenerator",
    "SimOrder",
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorState",
    "UpdateRecord",
]
