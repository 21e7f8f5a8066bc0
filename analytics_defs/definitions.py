"""The one `Definitions` of the lakehouse: each area's assets, checks, sensors, schedules and jobs,
merged, with the resources every area shares."""

import dagster as dg

from analytics_defs import bronze, daily, ml
from analytics_defs.resources import build_resources
from settings import current

defs = dg.Definitions.merge(
    bronze.defs,
    daily.defs,
    ml.defs,
    dg.Definitions(resources=build_resources(current())),
)
