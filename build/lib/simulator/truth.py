"""Ground truth of a simulator run: the files that tests and benchmarks score detection against.

A run directory holds:

- users.jsonl     one row per user: persona, home, devices and IPs, drift kind, dedicated scenario
- labels.jsonl    one row per (scenario, expected rule): what a detector should (or must not) raise
- malformed.jsonl one row per malformed or duplicate message: its key, where it landed, expected reason
- summary.json    counts and rates of the run

Labels are per rule: an account takeover yields two rows (account_takeover and brute_force for its
failure burst) with the same `scenario_id`. `complete` is false for a scenario the run stopped in the
middle of (its `event_ids` are then only those produced); score detection on complete labels only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

USERS_FILE = "users.jsonl"
LABELS_FILE = "labels.jsonl"
MALFORMED_FILE = "malformed.jsonl"
SUMMARY_FILE = "summary.json"

# The rule name an ML anomaly model is expected to raise for a drifting user (not a CEP rule).
RULE_BEHAVIOR_ANOMALY = "behavior_anomaly"


@dataclass
class Label:
    scenario_id: str
    scenario: str  # e.g. brute_force, brute_force_control, drift
    user_id: str | None  # null for IP-scoped scenarios (credential stuffing)
    ip: str | None
    expected_rule: str  # a contract.detection RULE_* name, or RULE_BEHAVIOR_ANOMALY
    expected_alert: bool  # False for controls that stay just under the threshold
    start_ms: int | None = None  # occurred_at range of the events produced for this label
    end_ms: int | None = None
    event_ids: list[str] = field(default_factory=list)
    complete: bool = False  # all planned events produced; for a drift: the run outlasted its ramp
    details: dict[str, str] = field(default_factory=dict)  # e.g. distance_km, drift kind

    def add_event(self, event_id: str, occurred_at: int) -> None:
        self.event_ids.append(event_id)
        if self.start_ms is None:
            self.start_ms = occurred_at
        self.end_ms = occurred_at


@dataclass
class MalformedRecord:
    seq: int  # n of the key b"malformed-<n>"; duplicates count in the same sequence
    key: str  # the Kafka message key (a duplicate keeps its original's user key)
    expected_reason: str  # contract.user_events.QuarantineReason value, with ":<field>" where it has one
    variant: str  # how the message is malformed, e.g. "truncated", "lat_out_of_range"
    occurred_at: int  # simulated time at which it was produced
    partition: int | None = None  # known once the broker acknowledged it
    offset: int | None = None

    def on_delivery(self, err: object, msg: object) -> None:
        """confluent-kafka delivery callback: remember where the message landed."""
        if err is None:
            self.partition, self.offset = msg.partition(), msg.offset()  # type: ignore[attr-defined]


@dataclass
class GroundTruth:
    users: list[dict]
    labels: list[Label]
    malformed: list[MalformedRecord]
    summary: dict


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")))
            f.write("\n")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_ground_truth(out_dir: Path, truth: GroundTruth) -> Path:
    """Write the four files into `out_dir` (created if missing) and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / USERS_FILE, truth.users)
    _write_jsonl(out_dir / LABELS_FILE, [asdict(label) for label in truth.labels])
    _write_jsonl(out_dir / MALFORMED_FILE, [asdict(record) for record in truth.malformed])
    (out_dir / SUMMARY_FILE).write_text(json.dumps(truth.summary, indent=2, sort_keys=True) + "\n")
    return out_dir


def read_labels(path: Path) -> list[Label]:
    return [Label(**row) for row in _read_jsonl(path)]


def read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_ground_truth(out_dir: Path | str) -> GroundTruth:
    """Read a run directory written by `write_ground_truth` back into the same objects."""
    out_dir = Path(out_dir)
    return GroundTruth(
        users=_read_jsonl(out_dir / USERS_FILE),
        labels=read_labels(out_dir / LABELS_FILE),
        malformed=[MalformedRecord(**row) for row in _read_jsonl(out_dir / MALFORMED_FILE)],
        summary=json.loads((out_dir / SUMMARY_FILE).read_text()),
    )
