"""The dashboard's FastAPI application: `create_app(settings)` (uvicorn runs it from `python -m dashboard`)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dashboard import routes
from dashboard.snapshots import Dashboard
from dashboard.sources import Unavailable
from dashboard.traffic import TrafficGenerator
from settings import Settings, current

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or current()
    board = Dashboard(settings)
    traffic = TrafficGenerator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await board.start()
        try:
            yield
        finally:
            traffic.stop()
            await board.stop()

    app = FastAPI(
        title="Lakehouse dashboard",
        version="1",
        summary="Live health, metrics, security alerts and ML insights of the streaming lakehouse",
        lifespan=lifespan,
    )
    app.state.settings, app.state.dashboard, app.state.traffic = settings, board, traffic
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app
