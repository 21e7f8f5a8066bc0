"""How every asset writes and selects its partitions in Delta: one place for the predicates and for the
atomic partition replace, so no asset spells them on its own.

A partitioned asset replaces exactly its own partition(s) with `replaceWhere` in one Delta commit: a
rerun or a backfill reproduces the partition, never appends to it, and a write killed midway leaves
only uncommitted files, which readers never see.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, SparkSession


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}'"


def window_range_predicate(start: datetime, end: datetime, column: str = "window_start") -> str:
    """Rows of the windows in [start, end)."""
    return f"{column} >= {_ts(start)} AND {column} < {_ts(end)}"


def date_range_predicate(first: date, last: date, column: str) -> str:
    """Rows of the days first..last, both included."""
    return f"{column} BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"


def day_predicate(day: date, column: str) -> str:
    return f"{column} = DATE '{day.isoformat()}'"


def replace_where(
    df: DataFrame, path: str, predicate: str, partition_by: str, stats_columns: Sequence[str] | None = None,
    merge_schema: bool = False,
) -> None:
    """Atomically replace the rows matching `predicate` in the Delta table at `path` (created if it does
    not exist yet, partitioned by `partition_by`). Creating the table sets its data-skipping statistics
    columns when given (a table property, kept by later writes). `merge_schema` lets the write add columns
    to an existing table (older partitions read them as null)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).partitionBy(partition_by)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if stats_columns:
        writer = writer.option("delta.dataSkippingStatsColumns", ",".join(stats_columns))
    writer.save(path)


def read_table(spark: SparkSession, path: str, predicate: str | None = None, version: int | None = None) -> DataFrame:
    """The table (as of `version` when given: every query of the DataFrame then reads that one snapshot)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    df = reader.load(path)
    return df.where(predicate) if predicate else df


def current_version(path: str) -> int:
    """The table's latest committed version (read with delta-rs, no Spark job)."""
    from deltalake import DeltaTable

    return DeltaTable(path).version()


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read_day(path: str, column: str, day: date, columns: Sequence[str] | None = None):
    """One day of a Delta table as pandas, read with delta-rs (no Spark needed for a day of features);
    an empty frame when the table does not exist yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        import pandas as pd

        return pd.DataFrame(columns=list(columns or []))
    return table.to_pandas(columns=list(columns) if columns else None, filters=[(column, "=", day)])
