"""Where the Delta tables live (a local folder by default; any URI Spark and delta-rs can reach)."""

import dagster as dg


class WarehouseResource(dg.ConfigurableResource):
    """Root of the lakehouse's Delta tables (`<LAKEHOUSE_DATA_DIR>/warehouse` locally)."""

    root: str

    def table_path(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"
