"""Quality gates: Great Expectations 1.x suites run on a whole partition through Spark, their result
turned into an asset check's outcome and metadata.

GX is called directly with an ephemeral context (no project directory, no analytics, no progress bars),
not through `dagster-ge` (it pins GX below 1.0) and not with GX's `[spark]` extra (it pins an older
pyspark): GX 1.x validates Spark Connect DataFrames once the Connect session exists, which the calling
asset has created. GX is imported on first use only: its import takes seconds, which a code-location
load must not pay.

The suites are declared here, per table, as plain lists of (expectation, arguments); the checks read the
partition back from its Delta table, so a gate judges what was committed. A partition of up to
PANDAS_MAX_ROWS rows (a bronze minute window) is collected once and validated by GX's pandas engine: the
same suite and result, without a Spark job per metric; a larger one is validated through Spark.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from pyspark.sql import DataFrame

from contract.user_events import EVENT_TYPES, REQUIRED_FIELDS
from ml.features import FEATURES


@dataclass(frozen=True)
class Expect:
    """One expectation: the GX class name and its arguments."""

    kind: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    evaluated: int
    failed: list[dict]  # {"expectation", "unexpected_count" or "observed_value"}

    @property
    def metadata(self) -> dict:
        return {
            "expectations_evaluated": self.evaluated,
            "expectations_failed": len(self.failed),
            "failed": self.failed,
        }


def _event_expectations(time_column: str) -> list[Expect]:
    """What every stored event must satisfy, bronze and silver alike."""
    required = [name if name != "occurred_at" else time_column for name in REQUIRED_FIELDS]
    return [
        *(Expect("ExpectColumnValuesToNotBeNull", {"column": c}) for c in required),
        Expect("ExpectColumnValuesToBeInSet", {"column": "event_type", "value_set": list(EVENT_TYPES)}),
        Expect("ExpectColumnValuesToBeBetween", {"column": "lat", "min_value": -90, "max_value": 90}),
        Expect("ExpectColumnValuesToBeBetween", {"column": "lon", "min_value": -180, "max_value": 180}),
    ]


def bronze_suite(expected_rows: int) -> list[Expect]:
    return [*_event_expectations("occurred_at_ts"), Expect("ExpectTableRowCountToEqual", {"value": expected_rows})]


def silver_suite(distinct_events: int) -> list[Expect]:
    return [
        *_event_expectations("event_time"),
        Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),
        Expect("ExpectTableRowCountToEqual", {"value": distinct_events}),
    ]


def _bounds(feature: str) -> dict:
    """The range a feature's values must fall in (counts and amounts are never negative)."""
    if feature.startswith("share_") or feature.endswith("night_share_7d") or feature == "failed_login_ratio_7d":
        return {"min_value": 0, "max_value": 1}
    if feature.endswith(("hour_sin_7d", "hour_cos_7d")):
        return {"min_value": -1, "max_value": 1}
    if feature == "hour_mean_7d":
        return {"min_value": 0, "max_value": 24}
    if feature == "active_days_7d":
        return {"min_value": 1, "max_value": 7}
    return {"min_value": 0}


def features_suite(active_users: int) -> list[Expect]:
    """No nulls where a feature is defined, values in their range, one row per active user."""
    expectations = [Expect("ExpectColumnValuesToNotBeNull", {"column": "user_id"}),
                    Expect("ExpectColumnValuesToBeUnique", {"column": "user_id"})]
    for f in FEATURES:
        expectations.append(Expect("ExpectColumnValuesToNotBeNull", {"column": f.name}))
        expectations.append(Expect("ExpectColumnValuesToBeBetween", {"column": f.name, **_bounds(f.name)}))
    expectations.append(Expect("ExpectTableRowCountToEqual", {"value": active_users}))
    return expectations


_LOCK = threading.Lock()
PANDAS_MAX_ROWS = 200_000  # partitions up to this size are validated in pandas (see `validate`)


def _class_name(snake: str) -> str:
    """expect_column_values_to_be_in_set -> ExpectColumnValuesToBeInSet (the names the suites use)."""
    return "".join(part.capitalize() for part in snake.split("_"))


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    sources = {"spark": context.data_sources.add_spark(name="spark"), "pandas": context.data_sources.add_pandas(name="pandas")}
    return gx, context, sources


def validate(df: DataFrame, name: str, expectations: Sequence[Expect]) -> GateResult:
    """Run `expectations` on the whole of `df`; the failed ones with their unexpected counts.

    Only the columns the expectations name are read. GX's few metric queries read them straight from
    the table's Parquet files: caching the projection first cost more (1-3 s for a day of 5 million
    events) than the second and third columnar reads it saves. The row count of a partition read is
    answered from the Delta log."""
    columns = sorted({e.kwargs["column"] for e in expectations if "column" in e.kwargs})
    data = df.select(*columns) if columns else df
    if data.count() <= PANDAS_MAX_ROWS:
        # a small partition (a minute window): GX's metric queries cost more than the data does
        # through Spark Connect; the same suite on the same rows, collected once, takes a fraction
        return _validate(data.toPandas(), "pandas", name, expectations)
    return _validate(data, "spark", name, expectations)


def _validate(df, engine: str, name: str, expectations: Sequence[Expect]) -> GateResult:
    """The suite first as BOOLEAN_ONLY: one bundle of aggregate metrics, none of the per-expectation
    queries for sample unexpected values, which a passing gate (the usual case) does not need. Only if
    something failed do the failed expectations run again in GX's SUMMARY format, for their counts."""
    outcome = _run_suite(df, engine, name, expectations, "BOOLEAN_ONLY")
    failing = [e for e in expectations if any(_is(e, r.expectation_config) for r in outcome.results if not r.success)]
    if outcome.success:
        return GateResult(True, len(outcome.results), [])
    failed = []
    for result in _run_suite(df, engine, name, failing, "SUMMARY").results:  # GX's order: each names its expectation
        config = result.expectation_config
        column = config.kwargs.get("column")
        found = result.result or {}
        detail = {"expectation": _class_name(config.type) + (f"({column})" if column else "")}
        if "unexpected_count" in found:
            detail["unexpected_count"] = found["unexpected_count"]
        if "observed_value" in found:
            detail["observed_value"] = found["observed_value"]
        if result.exception_info and result.exception_info.get("raised_exception"):
            detail["error"] = str(result.exception_info.get("exception_message"))[:500]
        failed.append(detail)
    return GateResult(False, len(outcome.results), failed)


def _is(expectation: Expect, config) -> bool:
    """Whether a result's expectation configuration is `expectation`."""
    return (_class_name(config.type) == expectation.kind
            and all(config.kwargs.get(k) == v for k, v in expectation.kwargs.items()))


def _run_suite(df, engine: str, name: str, expectations: Sequence[Expect], result_format: str):
    with _LOCK:
        gx, _, sources = _context()
        source = sources[engine]
        asset_name = f"{name}-{uuid.uuid4().hex[:8]}"
        asset = source.add_dataframe_asset(name=asset_name)
        try:
            batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
            suite = gx.ExpectationSuite(
                name=asset_name, expectations=[getattr(gx.expectations, e.kind)(**e.kwargs) for e in expectations]
            )
            return batch.validate(suite, result_format=result_format)
        finally:
            source.delete_asset(asset_name)
