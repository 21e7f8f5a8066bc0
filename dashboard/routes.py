"""The HTTP API. Every body is one of the models in models.py (documented in /openapi.json); bad input is a
422 with what was wrong, a system that is down a 503 or an `unavailable` part, never a 500."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse

from contract.alerts import Severity
from dashboard import models, sse
from dashboard.snapshots import Dashboard
from dashboard.sources import Unavailable
from dashboard.sources.alerts import AlertFilter, BadCursor
from dashboard.traffic import MAX_EVENTS, MAX_RATE, SCENARIOS, Busy, TrafficError, TrafficGenerator

router = APIRouter(prefix="/api")
JSON = "application/json"
_problem = {"model": models.Problem}
_unavailable = {503: {"model": models.Problem, "description": "PostgreSQL does not answer"}}
_bearer = HTTPBearer(auto_error=False, description="DASHBOARD_TOKEN")


def dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard


def traffic(request: Request) -> TrafficGenerator:
    return request.app.state.traffic


Board = Annotated[Dashboard, Depends(dashboard)]


@router.get("/health", response_model=models.Health, summary="Health of every component",
            responses={503: {"model": models.Health, "description": "a required component is not healthy"}})
async def health(board: Board) -> Response:
    value, body = await board.health.get_encoded()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if value["status"] == "unhealthy" else status.HTTP_200_OK
    return Response(body, status_code=code, media_type=JSON)


@router.get("/metrics", response_model=models.Metrics, summary="Events in, landing, freshness, quarantine, alerts, lag")
async def metrics(board: Board) -> Response:
    return Response((await board.metrics.get_encoded())[1], media_type=JSON)


@router.get("/alerts", response_model=models.AlertPage, summary="Security alerts, newest first",
            responses=_unavailable)
async def alerts(
    board: Board,
    rule: Annotated[str | None, Query(pattern=r"^[a-z0-9_.:-]{1,64}$", description="rule or model name")] = None,
    severity: Severity | None = None,
    source: Annotated[models.AlertSource | None, Query(description="cep (Flink rules) or ml (anomaly model)")] = None,
    user_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")] = None,
    since: Annotated[datetime | None, Query(description="detected at or after (ISO 8601; UTC when no offset)")] = None,
    until: Annotated[datetime | None, Query(description="detected before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,512}$", description="next_cursor of a page")] = None,
) -> Response:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise _invalid("query", "since", "since must not be after until")
    filters = AlertFilter(rule, severity.value if severity else None,
                          models.SOURCE_NAMES[source] if source else None, user_id, since, until)
    try:
        page = await board.alert_page(filters, limit, cursor)
    except BadCursor as exc:
        raise _invalid("query", "cursor", str(exc)) from None
    except Unavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return Response(page, media_type=JSON)


@router.get("/segments", response_model=models.Segments, summary="Segment sizes of the latest scoring")
async def segments(board: Board) -> Response:
    return Response((await board.segments.get_encoded())[1], media_type=JSON)


@router.get("/spark-metrics", response_model=models.SparkMetrics, summary="Spark application and landing runs")
async def spark_metrics(board: Board) -> Response:
    return Response((await board.spark_metrics.get_encoded())[1], media_type=JSON)


@router.get("/kafka", response_model=models.KafkaInfo, summary="Topics, offsets, consumer groups and lag")
async def kafka(board: Board) -> Response:
    return Response((await board.kafka_overview.get_encoded())[1], media_type=JSON)


@router.get("/stream", response_class=EventSourceResponse, summary="Server-sent events: health, metrics, alerts",
            description=sse.__doc__)
async def stream(board: Board):
    async for event in sse.events(board):
        yield event


@router.get("/generate-test-data", response_model=models.TestDataOptions, summary="What test traffic can be made")
def test_data_options(request: Request) -> dict:
    job = traffic(request).job
    return {"enabled": request.app.state.settings.dashboard_token is not None, "scenarios": list(SCENARIOS),
            "max_events": MAX_EVENTS, "max_rate": MAX_RATE, "running": job.view() if job else None}


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """`Authorization: Bearer <DASHBOARD_TOKEN>`; refused outright when no token is configured."""
    configured = request.app.state.settings.dashboard_token
    if configured is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "test traffic is disabled: set DASHBOARD_TOKEN for the dashboard to enable it")
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), configured.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong token (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})


@router.post(
    "/generate-test-data", response_model=models.TestDataJob, status_code=status.HTTP_202_ACCEPTED,
    summary="Start a bounded burst of simulated traffic or a named attack scenario",
    dependencies=[Depends(require_token)],
    responses={400: {**_problem, "description": "the body is not JSON"},
               401: {**_problem, "description": "no token, or a wrong one"},
               403: {**_problem, "description": "no DASHBOARD_TOKEN is configured"},
               409: {**_problem, "description": "a test-traffic job is still running"}},
)
def generate_test_data(body: models.TestDataRequest, request: Request) -> dict:
    if body.kind == "scenario" and body.scenario is None:
        raise _invalid("body", "scenario", f"a scenario needs its name: one of {', '.join(SCENARIOS)}")
    try:
        job = traffic(request).start(body.kind, body.events, body.rate, body.scenario)
    except TrafficError as exc:
        raise _invalid("body", "scenario", str(exc)) from None
    except Busy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return job.view()


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _invalid(where: str, name: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, so every 422 matches the one documented schema."""
    return RequestValidationError([{"loc": [where, name], "msg": message, "type": "value_error"}])
