"""The Dagster code location of the lakehouse: `analytics_defs.definitions.defs`."""
