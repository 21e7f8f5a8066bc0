"""POST /api/generate-test-data: bounded test traffic on demand, one job at a time.

- `burst`: the project's simulator (`python -m simulator`, background users only) for a bounded count at a
  bounded rate, as a child process (so `lakehouse down` stops it with the dashboard). Its summary is written
  under <data dir>/simulator/ like every simulator run.
- `scenario`: one named attack scenario (or control) of `simulator.scenarios`, produced in real time by a
  thread here, with its ground-truth labels written under <data dir>/simulator/dashboard-<id>/, so
  `lakehouse score-alerts` counts its alerts as expected, not as false positives. Its users and addresses
  come from ranges no simulated user or attacker ever gets (ids from u-900000000, IPs in 100.64.0.0/10).
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from contract.detection import DetectionThresholds
from contract.topics import USER_EVENTS
from resources.kafka import KafkaResource
from settings import PROJECT_ROOT, Settings
from simulator.personas import PERSONAS_BY_NAME
from simulator.population import IpPool, new_user
from simulator.scenarios import TEMPLATES, Plan, ScenarioContext, build
from simulator.truth import GroundTruth, write_ground_truth

log = logging.getLogger("dashboard")

SCENARIOS = tuple(sorted(TEMPLATES))
MAX_EVENTS = 100_000
MAX_RATE = 5_000
MAX_SCENARIO_S = 600  # scenarios that need longer (e.g. impossible travel) are for the simulator itself
_USER_INDEX_BASE = 900_000_000
BURST_IDENTITY_SPACE = 8  # user ids from 800,000,000 and device IPs from 32.0.0.0 (simulator --identity-space)
_USER_IPS, _ATTACKER_IPS = "100.64.0.0", "100.96.0.0"  # RFC 6598 space: no simulated user or attacker has one


class TrafficError(ValueError):
    """The request cannot be carried out as asked (the message says why): a 4xx."""


class Busy(RuntimeError):
    """A test-traffic job is still running."""


@dataclass
class Job:
    job_id: str
    kind: str
    events: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    rate: float | None = None
    scenario: str | None = None
    expected_rule: str | None = None
    ground_truth: str | None = None
    failed: bool = False
    process: subprocess.Popen | None = None
    thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        if self.process is not None:
            code = self.process.poll()
            return "running" if code is None else "finished" if code == 0 else "failed"
        if self.thread is not None and self.thread.is_alive():
            return "running"
        return "failed" if self.failed else "finished"

    def view(self) -> dict:
        return {"job_id": self.job_id, "kind": self.kind, "status": self.status, "started_at": self.started_at,
                "events": self.events, "rate": self.rate, "scenario": self.scenario,
                "expected_rule": self.expected_rule, "ground_truth": self.ground_truth}


class TrafficGenerator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.kafka = KafkaResource.from_settings(settings)
        self.job: Job | None = None
        self._lock = threading.Lock()

    @property
    def simulator_dir(self) -> Path:
        return self.settings.data_dir / "simulator"

    def start(self, kind: str, events: int, rate: int, scenario: str | None) -> Job:
        with self._lock:
            if self.job is not None and self.job.status == "running":
                raise Busy(f"test-traffic job {self.job.job_id} ({self.job.kind}) is still running")
            job_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
            self.job = self._burst(job_id, events, rate) if kind == "burst" else self._scenario(job_id, scenario)
            return self.job

    def stop(self) -> None:
        job = self.job
        if job is not None and job.process is not None and job.process.poll() is None:
            job.process.terminate()

    def _burst(self, job_id: str, events: int, rate: int) -> Job:
        out_dir = self.simulator_dir / f"dashboard-{job_id}"
        log_path = self.settings.log_dir / "dashboard-traffic.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "simulator", "--clock", "realtime", "--count", str(events), "--rate", str(rate),
                "--no-scenarios", "--users", "2000", "--out-dir", str(out_dir),
                # people of their own: a burst never moves a user of the running simulator elsewhere
                "--identity-space", str(BURST_IDENTITY_SPACE)]
        with open(log_path, "ab") as out:
            process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=self.settings.service_env(), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT)
        log.info("test traffic %s: burst of %d events at %d/s (pid %d)", job_id, events, rate, process.pid)
        return Job(job_id, "burst", events, rate=float(rate), ground_truth=str(out_dir), process=process)

    def _scenario(self, job_id: str, name: str | None) -> Job:
        if name not in TEMPLATES:
            raise TrafficError(f"scenario must be one of: {', '.join(SCENARIOS)}")
        plan = plan_scenario(name, f"dashboard-{job_id}", DetectionThresholds.from_env())
        out_dir = self.simulator_dir / f"dashboard-{job_id}"
        expected = next((lb.expected_rule for lb in plan.labels if lb.expected_alert), None)
        job = Job(job_id, "scenario", len(plan.events), scenario=name, expected_rule=expected, ground_truth=str(out_dir))
        job.thread = threading.Thread(target=self._produce, args=(job, plan, out_dir), name=f"traffic-{job_id}",
                                      daemon=True)
        job.thread.start()
        log.info("test traffic %s: scenario %s, %d events", job_id, name, len(plan.events))
        return job

    def _produce(self, job: Job, plan: Plan, out_dir: Path) -> None:
        """Each event at its planned time (real-time clock), then the labels as ground truth."""
        try:
            producer = self.kafka.producer()
            for ts, key, payload, event_id, labels in sorted(plan.events, key=lambda e: e[0]):
                delay = ts / 1000 - time.time()
                if delay > 0:
                    time.sleep(delay)
                producer.produce(USER_EVENTS, key=key, value=payload)
                producer.poll(0)
                for label in labels:
                    label.add_event(event_id, ts)
            if producer.flush(30) != 0:
                raise RuntimeError("Kafka did not acknowledge every event within 30 s")
            for label in plan.labels:
                label.complete = True
            write_ground_truth(out_dir, GroundTruth(
                users=[{"user_id": u.user_id, "scenario_id": plan.scenario_id} for u in plan.users],
                labels=plan.labels, malformed=[],
                summary={"source": "dashboard", "scenario": plan.scenario, "events": len(plan.events),
                         "first_occurred_at": min(e[0] for e in plan.events), "last_occurred_at": plan.end_ms}))
        except Exception:  # a thread has no caller to raise to: record the failure, log why
            job.failed = True
            log.exception("test traffic %s failed", job.job_id)


def plan_scenario(name: str, scenario_id: str, thresholds: DetectionThresholds, start_ms: int | None = None) -> Plan:
    """The events of one scenario starting a second from now, with fresh users and addresses."""
    rng = random.Random(secrets.randbits(64))
    indexes = itertools.count(_USER_INDEX_BASE + rng.randrange(90_000_000))
    user_ips = IpPool(_USER_IPS, rng.randrange(500_000))
    attacker_ips = IpPool(_ATTACKER_IPS, rng.randrange(500_000))
    persona = PERSONAS_BY_NAME["casual_browser"]
    ctx = ScenarioContext(rng, thresholds, lambda city: new_user(rng, next(indexes), persona, user_ips, city),
                          attacker_ips)
    start = int(time.time() * 1000) + 1000 if start_ms is None else start_ms
    plan = build(ctx, name, scenario_id, start, start + MAX_SCENARIO_S * 1000)
    if plan is None:
        raise TrafficError(f"scenario {name} takes longer than {MAX_SCENARIO_S} s of real time: "
                           "run it with the simulator (python -m simulator) instead")
    return plan
