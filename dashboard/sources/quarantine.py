"""Quarantined messages by reason, read from the `bronze_quarantine` Delta table with delta-rs (the
reason is kept only there; streaming_performance has the counts per window)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from dashboard.sources import Unavailable, first_line


def reasons_since(table_path: str, since: datetime) -> Counter | None:
    """Rows per reason in the windows starting at or after `since`; None when the table does not exist yet."""
    try:
        table = DeltaTable(table_path)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:  # an unreadable warehouse: permissions, a store that does not answer
        raise Unavailable(f"Delta table {table_path}: {first_line(exc)}") from None
    try:
        rows = table.to_pyarrow_table(columns=["reason"], filters=[("window_start", ">=", since)])
    except (DeltaError, OSError) as exc:
        raise Unavailable(f"Delta table {table_path}: {first_line(exc)}") from None
    return Counter(rows.column("reason").to_pylist())
