"""`python -m dashboard`: the dashboard under uvicorn on LAKEHOUSE_BIND_HOST:DASHBOARD_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn

from dashboard.app import create_app
from settings import ConfigError, current


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = current()
    except ConfigError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("dashboard").info("serving on http://%s:%d", settings.host, settings.dashboard_port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.dashboard_port, access_log=False,
                log_level="warning", timeout_graceful_shutdown=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
