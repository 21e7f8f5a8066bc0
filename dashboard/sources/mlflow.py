"""The MLflow model registry: which version of a model carries the `champion` alias."""

from __future__ import annotations

from dashboard.sources.http import get_json

CHAMPION = "champion"


def champion_version(tracking_uri: str, model_name: str) -> str | None:
    body = get_json("MLflow", f"{tracking_uri}/api/2.0/mlflow/registered-models/alias",
                    params={"name": model_name, "alias": CHAMPION}, missing_ok=True)
    if not body:
        return None
    return str(body.get("model_version", {}).get("version")) or None
