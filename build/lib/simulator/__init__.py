"""Stand-in for the user service: user-activity events to Kafka `user-events`, with ground truth.

Library use (tests, benchmarks)::

    sim = Simulator(SimulatorConfig(seed=1, clock="simulated", count=10_000, start_ms=...))
    for key, value, headers, kind in sim.events(): ...
    truth = sim.ground_truth()                      # users, labels, malformed records, summary

    summary = run(config, make_producer("localhost:9092"))   # produce a run and write its ground truth
    load_ground_truth(summary["out_dir"])
"""

from simulator.config import CLOCK_REALTIME, CLOCK_SIMULATED, SimulatorConfig, SimulatorConfigError
from simulator.engine import KINDS, Message, Simulator
from simulator.malformed import HEADER_EXPECTED
from simulator.produce import Delivery, check_topic, ensure_reachable, make_producer, produce_user_events, run
from simulator.truth import GroundTruth, Label, MalformedRecord, load_ground_truth, write_ground_truth

__all__ = [
    "CLOCK_REALTIME",
    "CLOCK_SIMULATED",
    "HEADER_EXPECTED",
    "KINDS",
    "Delivery",
    "GroundTruth",
    "Label",
    "MalformedRecord",
    "Message",
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
    "check_topic",
    "ensure_reachable",
    "load_ground_truth",
    "make_producer",
    "produce_user_events",
    "run",
    "write_ground_truth",
]
