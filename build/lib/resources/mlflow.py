"""MLflow tracking: every training run is tagged with the Dagster run, asset and partition behind it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

TAG_DAGSTER_RUN_ID = "dagster.run_id"
TAG_DAGSTER_ASSET = "dagster.asset_key"
TAG_DAGSTER_PARTITION = "dagster.partition_key"


class MLflowResource(dg.ConfigurableResource):
    """The MLflow tracking server (`MLFLOW_TRACKING_URI`) and the experiment runs are logged to."""

    tracking_uri: str
    experiment_name: str = "lakehouse"

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    @contextmanager
    def start_run(
        self,
        context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Iterator:
        """An active MLflow run in this resource's experiment, tagged with its Dagster lineage."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        experiment = mlflow.set_experiment(self.experiment_name)
        lineage: dict[str, str] = {}
        if context is not None:
            lineage[TAG_DAGSTER_RUN_ID] = context.run.run_id
            if isinstance(context, dg.AssetExecutionContext):
                lineage[TAG_DAGSTER_ASSET] = context.asset_key.to_user_string()
            if context.has_partition_key:
                lineage[TAG_DAGSTER_PARTITION] = context.partition_key
        with mlflow.start_run(
            experiment_id=experiment.experiment_id, run_name=run_name, tags={**lineage, **(tags or {})}
        ) as run:
            yield run
