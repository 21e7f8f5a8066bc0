"""Simulator ground truth for the models: who has which persona, whose behaviour drifts.

Reads run directories written by the simulator (simulator/truth.py): `users.jsonl` (one row per user,
`persona`; scenario identities carry the persona "scenario_user") and `labels.jsonl` (drifting users
are labels with expected_rule "behavior_anomaly", scenario "drift"). Pass one run directory, several,
or a folder holding run directories (as `<data dir>/simulator/`, which alerts.scoring.read_truth reads
the same way); a persistent population is written again by every run, the latest row of a user wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from simulator.truth import LABELS_FILE, RULE_BEHAVIOR_ANOMALY, USERS_FILE, read_labels

SCENARIO_PERSONA = "scenario_user"  # users.jsonl's persona of identities made for one attack scenario
DRIFT_SCENARIO = "drift"


def run_directories(paths: Path | str | Iterable[Path | str]) -> list[Path]:
    """Every run directory among `paths`: a directory holding truth files is one, a folder of them
    contributes each child that is one (sorted, so later runs come last)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / USERS_FILE).exists() or (path / LABELS_FILE).exists():
            runs.append(path)
        else:
            runs += sorted(p.parent for p in path.glob(f"*/{USERS_FILE}"))
    if not runs:
        raise FileNotFoundError(f"no simulator truth ({USERS_FILE} / {LABELS_FILE}) under {list(map(str, paths))}")
    return runs


def read_personas(paths: Path | str | Iterable[Path | str], include_scenario_users: bool = False) -> pd.Series:
    """persona by user_id (a Series indexed by user_id) from every run's users.jsonl. Scenario
    identities are left out unless asked for: they have no persona to recover."""
    frames = [pd.read_json(run / USERS_FILE, lines=True, dtype={"user_id": str})[["user_id", "persona"]]
              for run in run_directories(paths) if (run / USERS_FILE).exists()]
    if not frames:
        return pd.Series(dtype=object, name="persona")
    users = pd.concat(frames).drop_duplicates("user_id", keep="last")
    if not include_scenario_users:
        users = users[users["persona"] != SCENARIO_PERSONA]
    return users.set_index("user_id")["persona"]


def read_drifting_users(paths: Path | str | Iterable[Path | str], complete_only: bool = False) -> set[str]:
    """User ids the anomaly model should flag: drift labels expecting "behavior_anomaly". A drift is
    complete when the run outlasted its ramp; `complete_only` keeps only those (a drift that had barely
    started is hard to see and arguably not yet an anomaly)."""
    users: set[str] = set()
    for run in run_directories(paths):
        if not (run / LABELS_FILE).exists():
            continue
        for label in read_labels(run / LABELS_FILE):
            if (label.expected_rule == RULE_BEHAVIOR_ANOMALY and label.scenario == DRIFT_SCENARIO
                    and label.expected_alert and label.user_id and (label.complete or not complete_only)):
                users.add(label.user_id)
    return users
