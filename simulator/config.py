"""What a simulator run does: rate, volume, clock, seed, injected faults and where ground truth goes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.detection import DetectionThresholds
from contract.topics import USER_EVENTS
from contract.user_events import DEFAULT_MAX_PAYLOAD_BYTES
from settings import current

CLOCK_REALTIME = "realtime"  # paced to the wall clock, occurred_at = now
CLOCK_SIMULATED = "simulated"  # as fast as possible, occurred_at from a simulated clock
# Oversized test payloads must still fit a Kafka message (broker default max.message.bytes ~1 MiB).
MAX_PAYLOAD_LIMIT = 900_000
# Horizon assumed for drift planning when a real-time run has neither a duration nor a count.
OPEN_ENDED_HORIZON_MS = 3_600_000


class SimulatorConfigError(ValueError):
    """A setting is missing or wrong. The message names the option to set."""


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 0
    rate: float = 2000.0  # target events per second (of simulated time in the simulated clock)
    duration_s: float | None = None
    count: int | None = None  # messages, malformed and duplicates included
    users: int = 50_000
    clock: str = CLOCK_REALTIME
    start_ms: int | None = None  # default: now (realtime); now - planned span (simulated)
    malformed_rate: float = 0.001  # fraction of messages that are malformed or duplicates
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    scenarios: bool = True  # inject security scenarios and drifting users
    scenario_rate: float = 2.0  # scenarios started per minute
    drift_users: int | None = None  # default: 0.5% of the users (at least one) when scenarios are on
    future_offset_ms: int = 86_400_000  # how far ahead future-dated malformed messages are
    thresholds: DetectionThresholds = field(default_factory=DetectionThresholds.from_env)
    topic: str = USER_EVENTS
    # 0: the deployment's own users. Another space (1-9) holds other people (test traffic next to the
    # running simulator): user ids from space * 10^8, device IPs from (24 + space).0.0.0, so nobody in it
    # shares an id or an address with the standing population.
    identity_space: int = 0
    run_id: str | None = None  # default: <UTC time>-seed<seed>
    out_dir: Path | None = None  # default: <LAKEHOUSE_DATA_DIR>/simulator/<run_id>

    def validate(self) -> None:
        """Raise SimulatorConfigError naming the option to change; cheap, so call it before connecting."""
        if self.clock not in (CLOCK_REALTIME, CLOCK_SIMULATED):
            raise SimulatorConfigError(
                f"--clock must be {CLOCK_REALTIME} or {CLOCK_SIMULATED}, not {self.clock!r}"
            )
        if not self.rate > 0:
            raise SimulatorConfigError(f"--rate must be > 0 events/s, got {self.rate}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise SimulatorConfigError(f"--duration-s must be > 0, got {self.duration_s}")
        if self.count is not None and self.count < 1:
            raise SimulatorConfigError(f"--count must be >= 1, got {self.count}")
        if self.clock == CLOCK_SIMULATED and self.duration_s is None and self.count is None:
            raise SimulatorConfigError(
                "the simulated clock runs as fast as it can: set --count or --duration-s"
            )
        if not 0 <= self.identity_space <= 9:
            raise SimulatorConfigError(f"--identity-space must be within [0, 9], got {self.identity_space}")
        if self.users < 1:
            raise SimulatorConfigError(f"--users must be >= 1, got {self.users}")
        if not 0 <= self.malformed_rate <= 0.5:
            raise SimulatorConfigError(f"--malformed-rate must be within [0, 0.5], got {self.malformed_rate}")
        if not 1024 <= self.max_payload_bytes <= MAX_PAYLOAD_LIMIT:
            raise SimulatorConfigError(
                f"--max-payload-bytes must be within [1024, {MAX_PAYLOAD_LIMIT}] so that an oversized "
                f"test message still fits a Kafka message, got {self.max_payload_bytes}"
            )
        if self.scenario_rate < 0:
            raise SimulatorConfigError(f"--scenario-rate must be >= 0 per minute, got {self.scenario_rate}")
        if self.drift_users is not None and not 0 <= self.drift_users <= self.users:
            raise SimulatorConfigError(f"drift_users must be within [0, --users], got {self.drift_users}")
        t = self.thresholds
        for name in (
            "brute_force_min_failures",
            "rapid_activity_max_events",
            "credential_stuffing_min_users",
        ):
            if getattr(t, name) < 2:
                raise SimulatorConfigError(f"threshold {name} must be >= 2 for a control under it to exist")
        for name in (
            "brute_force_window_s",
            "takeover_success_within_s",
            "rapid_activity_window_s",
            "credential_stuffing_window_s",
            "impossible_travel_max_kmh",
            "impossible_travel_min_km",
        ):
            if not getattr(t, name) > 0:
                raise SimulatorConfigError(f"threshold {name} must be > 0")

    @property
    def horizon_ms(self) -> int | None:
        """Planned simulated span: the duration, or the time `count` messages take at `rate`."""
        if self.duration_s is not None:
            return int(self.duration_s * 1000)
        if self.count is not None:
            return int(self.count / self.rate * 1000)
        return None

    def resolved_start_ms(self, now_ms: int) -> int:
        """The simulated clock ends at about `now_ms` by default, so no valid event is future-dated."""
        if self.start_ms is not None:
            return self.start_ms
        if self.clock == CLOCK_REALTIME:
            return now_ms
        return now_ms - (self.horizon_ms or 0)

    def resolved_run_id(self) -> str:
        return self.run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-seed{self.seed}"

    def resolved_out_dir(self, run_id: str) -> Path:
        if self.out_dir is not None:
            return self.out_dir
        return current().data_dir / "simulator" / run_id
