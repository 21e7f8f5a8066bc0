"""The quality gates' outcome and metadata, on GX's pandas engine (the Spark engine runs in the
integration tests): a passing suite is judged in one BOOLEAN_ONLY pass, a failing one names each failed
expectation with its unexpected count or observed value."""

import pandas as pd
import pytest

from assets.quality import Expect, _validate, silver_suite

pytestmark = pytest.mark.unit


def _silver(rows: int, suite: list[Expect]) -> pd.DataFrame:
    """`rows` clean silver rows with every column `suite` names."""
    frame = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(rows)],
        "event_type": ["PAGE_VIEW"] * rows,
        "user_id": [f"u{i % 7}" for i in range(rows)],
        "session_id": ["s"] * rows,
        "event_time": pd.date_range("2026-11-20", periods=rows, freq="s", tz="UTC"),
        "lat": [52.5] * rows,
        "lon": [13.4] * rows,
    })
    for column in {e.kwargs["column"] for e in suite if "column" in e.kwargs} - set(frame.columns):
        frame[column] = "x"
    return frame


def test_a_clean_partition_passes_with_every_expectation_evaluated():
    suite = silver_suite(50)
    gate = _validate(_silver(50, suite), "pandas", "silver", suite)
    assert gate.passed and gate.failed == [] and gate.evaluated == len(suite)


def test_failures_name_the_expectation_and_count_what_was_unexpected():
    suite = silver_suite(50)
    frame = _silver(50, suite)
    frame.loc[3, "event_type"] = "TELEPORT"
    frame.loc[[5, 6], "lat"] = 123.0
    frame.loc[7, "event_id"] = "e8"  # a duplicate
    gate = _validate(frame, "pandas", "silver", suite)
    failed = {f["expectation"]: f for f in gate.failed}
    assert not gate.passed and gate.evaluated == len(suite)
    assert failed["ExpectColumnValuesToBeInSet(event_type)"]["unexpected_count"] == 1
    assert failed["ExpectColumnValuesToBeBetween(lat)"]["unexpected_count"] == 2
    assert failed["ExpectColumnValuesToBeUnique(event_id)"]["unexpected_count"] == 2
    assert set(failed) == {"ExpectColumnValuesToBeInSet(event_type)", "ExpectColumnValuesToBeBetween(lat)",
                           "ExpectColumnValuesToBeUnique(event_id)"}


def test_a_wrong_row_count_reports_the_observed_value():
    suite = silver_suite(49)
    frame = _silver(50, suite)
    gate = _validate(frame, "pandas", "silver", suite)
    assert [f.get("observed_value") for f in gate.failed] == [50]
