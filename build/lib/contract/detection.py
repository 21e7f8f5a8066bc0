"""Thresholds of the security rules, shared by the Flink CEP sidecar and the simulator's scenarios.

The simulator injects sequences that cross each threshold (and controls that stay just under it); the
Flink job compiles its SQL from the same numbers. Every value can be overridden by an environment
variable named in `ENV_VARS`, read once by `DetectionThresholds.from_env()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DetectionThresholds:
    # brute force (HIGH): at least this many LOGIN_FAILED of one user within the window
    brute_force_min_failures: int = 5
    brute_force_window_s: int = 60
    # account takeover (CRITICAL): a brute-force sequence followed by LOGIN_SUCCESS within this many seconds
    takeover_success_within_s: int = 300
    # rapid activity (MEDIUM): more than this many events of one user within the window
    rapid_activity_max_events: int = 40
    rapid_activity_window_s: int = 10
    # impossible travel (HIGH): consecutive logins of one user implying more than this speed, over
    # at least this distance (short hops are GPS / geo-IP noise, not travel)
    impossible_travel_max_kmh: float = 1000.0
    impossible_travel_min_km: float = 300.0
    # credential stuffing (HIGH): failed logins from one IP against at least this many distinct users
    credential_stuffing_min_users: int = 8
    credential_stuffing_window_s: int = 120

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DetectionThresholds:
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(ENV_VARS[f.name])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = type(getattr(cls, f.name))(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_VARS[f.name]}={raw!r} is not a valid {f.type}") from exc
        return cls(**values)


ENV_VARS: dict[str, str] = {f.name: f"CEP_{f.name.upper()}" for f in fields(DetectionThresholds)}

# Rule names as they appear in alerts (`rule` column / field).
RULE_BRUTE_FORCE = "brute_force"
RULE_ACCOUNT_TAKEOVER = "account_takeover"
RULE_RAPID_ACTIVITY = "rapid_activity"
RULE_IMPOSSIBLE_TRAVEL = "impossible_travel"
RULE_CREDENTIAL_STUFFING = "credential_stuffing"

RULE_SEVERITY: dict[str, str] = {
    RULE_BRUTE_FORCE: "HIGH",
    RULE_ACCOUNT_TAKEOVER: "CRITICAL",
    RULE_RAPID_ACTIVITY: "MEDIUM",
    RULE_IMPOSSIBLE_TRAVEL: "HIGH",
    RULE_CREDENTIAL_STUFFING: "HIGH",
}
