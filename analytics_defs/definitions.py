"""The one `Definitions` of the lakehouse: every asset, check, sensor, job and resource, by area."""

from __future__ import annotations

import dagster as dg

from analytics_defs.settings import build_resources

defs = dg.Definitions(
    assets=[],
    resources=build_resources(),
)
