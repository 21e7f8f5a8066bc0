"""What `lakehouse up` shows while a new deployment fills itself: the simulator's history produced, landed
and refined, then the models trained on it and promoted.

Read from where each stage leaves its mark: `<data dir>/simulator/history.json` (days produced), the
`streaming_performance` rows of bronze (events landed), the Dagster webserver's partition statistics
(event days of silver and features), its last `ml_training_job` runs, and the MLflow registry's
`@champion` aliases. A stage that does not answer yet reads as not started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
import requests

from settings import Settings
from simulator.history import HistoryState, read_state, state_path

# spelled here as the code location names them (analytics_defs.constants, ml.defaults), to keep Dagster
# and MLflow out of the CLI
SILVER, FEATURES, TRAINING_JOB = "silver_user_events", "user_features", "ml_training_job"
MODELS = ("user_segments_kmeans", "user_anomaly_iforest")
CHAMPION = "champion"
TIMEOUT_S = 5.0

_PARTITIONS = """query Partitions($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path } partitionStats { numMaterialized numPartitions numFailed numMaterializing } } }"""
_TRAINING = """query Training($job: String!) { runsOrError(filter: {pipelineName: $job}, limit: 4) {
  __typename ... on Runs { results { status tags { key value } } } } }"""


@dataclass
class Progress:
    history: HistoryState | None
    landed: int | None = None  # valid events in bronze
    days: dict[str, tuple[int, int]] = field(default_factory=dict)  # asset -> (materialized, event days)
    training: list[tuple[str, str]] = field(default_factory=list)  # (feature date, status), newest first
    champions: dict[str, str | None] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return bool(self.champions) and all(self.champions.values())

    def line(self) -> str:
        parts = []
        h = self.history
        if h is not None and h.skipped is None:
            parts.append(f"history {h.days_produced:.1f}/{h.span_days:.1f} days produced ({h.delivered:,} events)")
        if self.landed is not None:
            parts.append(f"{self.landed:,} events landed")
        for name, (done, total) in self.days.items():
            parts.append(f"{name} {done}/{total} days")
        if self.training:
            parts.append("training " + ", ".join(f"{day} {status.lower()}" for day, status in self.training))
        if self.champions:
            parts.append("champions " + ", ".join(f"{m.split('_')[1]} v{v}" if v else f"{m.split('_')[1]} none"
                                                  for m, v in self.champions.items()))
        return "; ".join(parts) or "waiting for the first window"


def _graphql(cfg: Settings, query: str, variables: dict) -> dict:
    response = requests.post(f"http://{cfg.host}:{cfg.dagster_port}/graphql",
                             json={"query": query, "variables": variables}, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json().get("data") or {}


def read_progress(cfg: Settings) -> Progress:
    progress = Progress(read_state(state_path(cfg.data_dir / "simulator")))
    try:
        with psycopg.connect(cfg.postgres_url, connect_timeout=3) as conn:
            progress.landed = int(conn.execute("SELECT coalesce(sum(rows_out), 0) FROM streaming_performance "
                                               "WHERE pipeline = 'bronze_user_events'").fetchone()[0])
    except psycopg.Error:
        pass
    try:
        nodes = _graphql(cfg, _PARTITIONS, {"keys": [{"path": [SILVER]}, {"path": [FEATURES]}]}).get("assetNodes", [])
        for node in nodes:
            stats = node.get("partitionStats") or {}
            name = "silver" if node["assetKey"]["path"][-1] == SILVER else "features"
            progress.days[name] = (stats.get("numMaterialized", 0), stats.get("numPartitions", 0))
        runs = _graphql(cfg, _TRAINING, {"job": TRAINING_JOB}).get("runsOrError", {}).get("results", [])
        for run in runs:
            tags = {t["key"]: t["value"] for t in run.get("tags") or []}
            progress.training.append((tags.get("lakehouse/feature_date", "?"), run["status"]))
    except (requests.RequestException, ValueError, KeyError):
        pass
    for model in MODELS:
        try:
            response = requests.get(f"{cfg.mlflow_tracking_uri}/api/2.0/mlflow/registered-models/alias",
                                    params={"name": model, "alias": CHAMPION}, timeout=TIMEOUT_S)
            version = response.json().get("model_version", {}).get("version") if response.ok else None
        except (requests.RequestException, ValueError):
            version = None
        progress.champions[model] = None if version is None else str(version)
    return progress


def follow(cfg: Settings, timeout_s: float, interval_s: float = 20.0, out=print) -> Progress:
    """Print a progress line every `interval_s` until both models have a champion (or `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    progress, last = read_progress(cfg), None
    while not progress.trained and time.monotonic() < deadline:
        if progress.line() != last:
            out(f"  first hour  {progress.line()}", flush=True)
            last = progress.line()
        time.sleep(interval_s)
        progress = read_progress(cfg)
    out(f"  first hour  {progress.line()}", flush=True)
    return progress
