"""The simulator's ground truth, where a deployment has one: personas and drifting users, read by the
training assets to report ARI and ROC-AUC beside the metrics that need no truth."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd


class GroundTruthResource(dg.ConfigurableResource):
    """The simulator's run directories (`<data dir>/simulator`); absent or empty on a real deployment."""

    directory: str | None = None

    def _runs(self) -> Path | None:
        if not self.directory or not any(Path(self.directory).glob("*/users.jsonl")):
            return None
        return Path(self.directory)

    def personas(self) -> pd.Series | None:
        from ml.truth import read_personas

        runs = self._runs()
        return read_personas(runs) if runs else None

    def drifting_users(self) -> set[str] | None:
        from ml.truth import read_drifting_users

        runs = self._runs()
        return read_drifting_users(runs) if runs else None
