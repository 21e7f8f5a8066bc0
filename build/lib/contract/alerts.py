"""The security-alert contract: one JSON object per message on `security-alerts`, keyed by `alert_id`.

Producers: the Flink CEP sidecar (rules in contract.detection) and the ML anomaly scorer. Consumer:
the alert loader, which upserts into PostgreSQL `security_alerts` on `alert_id`, so the same alert
delivered twice is stored once.

    {
      "alert_id": "3f9a…",                  # deterministic: alert_id(rule, subject, evidence)
      "rule": "brute_force",                # rule or model name
      "severity": "HIGH",                   # LOW | MEDIUM | HIGH | CRITICAL
      "source": "flink_cep",                # flink_cep | ml_anomaly
      "user_id": "u-000042",                # null for IP-scoped rules
      "ip": "203.0.113.7",                  # null when not applicable
      "window_start": 1764114300000,        # epoch ms, first evidence event (occurred_at)
      "window_end": 1764114359000,          # epoch ms, last evidence event
      "event_count": 5,
      "evidence_event_ids": ["…", "…"],
      "trigger_event_id": "…",              # the event that completed the pattern
      "trigger_event_ts": 1764114359012,    # its broker (log-append) timestamp, epoch ms
      "detected_at": 1764114359180,         # epoch ms, when the detector emitted the alert
      "details": {"distance_km": "…"}       # rule-specific, values as strings
    }
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


SOURCE_FLINK_CEP = "flink_cep"
SOURCE_ML_ANOMALY = "ml_anomaly"

ALERT_FIELDS: tuple[str, ...] = (
    "alert_id",
    "rule",
    "severity",
    "source",
    "user_id",
    "ip",
    "window_start",
    "window_end",
    "event_count",
    "evidence_event_ids",
    "trigger_event_id",
    "trigger_event_ts",
    "detected_at",
    "details",
)


def alert_id(rule: str, subject: str, evidence_event_ids: Iterable[str]) -> str:
    """Same rule, subject (user or IP) and evidence -> same id, whoever computes it.

    The Flink SQL computes the identical value as
    ``MD5(CONCAT_WS('|', rule, subject, <evidence ids joined by ','>))`` with the ids in event order;
    keep the two definitions in step (tests/unit/test_contract.py pins an example).
    """
    joined = ",".join(evidence_event_ids)
    return hashlib.md5(f"{rule}|{subject}|{joined}".encode()).hexdigest()
