"""Request and response models of the API: what /openapi.json documents and every response is held to.

Every part of a composite response carries a `status`: `ok`, `none_yet` (nothing stored yet: no alert, no
model, no landed window) or `unavailable` (its system does not answer; `message` says which and why)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from contract.alerts import SOURCE_FLINK_CEP, SOURCE_ML_ANOMALY, Severity

PartStatus = Literal["ok", "none_yet", "unavailable"]


def encode_as(model: type[BaseModel]):
    """value -> the JSON body of `model` (validated, so a cached body is exactly what the schema says)."""
    return lambda value: model.model_validate(value).model_dump_json().encode()


class Part(BaseModel):
    status: PartStatus = "ok"
    message: str | None = Field(None, description="why a part is none_yet or unavailable")


class Problem(BaseModel):
    """Any 4xx or 503: what was wrong, in words."""

    detail: str | list[dict[str, Any]]


# ---- /api/health ------------------------------------------------------------------------------
ComponentState = Literal["healthy", "unhealthy", "stopped"]


class ComponentHealth(BaseModel):
    name: str = Field(description="the service name `lakehouse status` prints")
    state: ComponentState
    required: bool = Field(description="a required component that is not healthy makes the overall status unhealthy")
    detail: str = Field(description="what was found, e.g. 'running (pid 4711)', 'external', the probe's error")
    endpoint: str | None = None
    ui_url: str | None = Field(None, description="its web UI, where it has one")


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checked_at: datetime
    components: list[ComponentHealth]


# ---- /api/metrics -----------------------------------------------------------------------------
class RatePoint(BaseModel):
    t: datetime = Field(description="end of a 10-second bucket")
    events_per_second: float


class EventRate(Part):
    topic: str
    events_per_second: float | None = Field(None, description="over the last 10 s, from broker timestamps")
    events_last_minute: int | None = None
    total_offsets: int | None = Field(None, description="sum of the partitions' end offsets")
    series: list[RatePoint] = []


class LandedWindow(BaseModel):
    window_start: datetime
    rows_in: int
    rows_out: int
    rows_quarantined: int
    seconds: float
    rows_per_second: float | None
    freshness_seconds: float | None = Field(None, description="window end to rows queryable")
    recorded_at: datetime


class Landing(Part):
    windows: list[LandedWindow] = Field([], description="the last landed windows, newest first")


class QuarantineReason(BaseModel):
    reason: str
    rows: int
    share: float = Field(description="share of all quarantined rows in the period")


class OutsideDate(BaseModel):
    event_date: date
    rows: int
    last_seen: datetime


class Quarantine(Part):
    since: datetime
    rows_in: int | None = Field(None, description="messages of the landed windows in the period")
    rows_quarantined: int | None = None
    rate: float | None = Field(None, description="rows_quarantined / rows_in")
    reasons: list[QuarantineReason] = []
    outside_partitions: list[OutsideDate] = Field(
        [], description="valid events in bronze whose date is before the first event day, so in no silver day "
        "(README: late and replayed events), per date since the deployment started")


class AlertCount(BaseModel):
    rule: str
    severity: Severity
    source: str
    count: int


class AlertCounts(Part):
    since: datetime
    total: int = 0
    counts: list[AlertCount] = []


class GroupLag(BaseModel):
    group: str
    role: str = Field(description="what the group is, e.g. 'CEP job', 'alert loader'")
    topic: str
    state: str
    members: int | None = None
    lag: int | None = Field(None, description="end offsets minus committed offsets; null before a first commit")


class ConsumerLag(Part):
    groups: list[GroupLag] = []


class Metrics(BaseModel):
    generated_at: datetime
    events: EventRate
    landing: Landing
    quarantine: Quarantine
    alerts: AlertCounts
    consumer_lag: ConsumerLag


# ---- /api/alerts ------------------------------------------------------------------------------
class AlertSource(StrEnum):
    cep = "cep"
    ml = "ml"


SOURCE_NAMES = {AlertSource.cep: SOURCE_FLINK_CEP, AlertSource.ml: SOURCE_ML_ANOMALY}


class Alert(BaseModel):
    alert_id: str
    rule: str
    severity: Severity
    source: str = Field(description=f"{SOURCE_FLINK_CEP} or {SOURCE_ML_ANOMALY}")
    user_id: str | None
    ip: str | None
    window_start: datetime | None
    window_end: datetime | None
    event_count: int | None
    evidence_event_ids: list[str]
    trigger_event_id: str | None
    trigger_event_ts: datetime | None
    detected_at: datetime
    stored_at: datetime
    details: dict[str, Any]


class AlertPage(BaseModel):
    status: Literal["ok", "none_yet"] = Field(description="none_yet: no alert stored at all")
    alerts: list[Alert]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next (older) page")


# ---- /api/segments ----------------------------------------------------------------------------
class Segment(BaseModel):
    segment_id: int
    segment_name: str | None
    users: int
    share: float
    mean_distance_to_centroid: float | None


class ModelMetric(BaseModel):
    metric: str
    value: float


class AnomalyScoring(BaseModel):
    scored_date: date
    scored_at: datetime
    model_name: str
    model_version: str
    as_of: datetime | None = Field(None, description="the end of the features' window that was scored")
    trusted: bool = Field(description="false: on probation (trained on under a whole window), raises no alert")
    history_days: float
    eligible_users: int
    past_threshold: int
    alerted_users: int = Field(description="alerts of the day over all its scorings")
    new_alerts: int
    budget: int = Field(description="alert_share x eligible users")
    capped: int = Field(description="past the threshold but over the budget: no alert")
    threshold: float


class Segments(Part):
    model_name: str | None = None
    model_version: str | None = None
    champion_version: str | None = Field(None, description="the registry's `champion` alias, when MLflow answers")
    scored_date: str | None = None
    scored_at: datetime | None = None
    users: int = 0
    segments: list[Segment] = []
    model_metrics: list[ModelMetric] = []
    anomaly: AnomalyScoring | None = Field(None, description="the anomaly champion's last scoring")


# ---- /api/spark-metrics -----------------------------------------------------------------------
class SparkJob(BaseModel):
    job_id: int
    name: str
    status: str
    submitted: str | None
    completed: str | None
    tasks: int
    failed_tasks: int


class SparkExecutor(BaseModel):
    id: str
    active: bool
    cores: int
    active_tasks: int
    completed_tasks: int
    failed_tasks: int
    memory_used: int
    max_memory: int


class SparkApplication(Part):
    ui_url: str
    app_id: str | None = None
    app_name: str | None = None
    jobs_by_status: dict[str, int] = {}
    active_stages: int | None = None
    recent_jobs: list[SparkJob] = []
    executors: list[SparkExecutor] = []


class LandingRun(BaseModel):
    run_id: str
    status: str
    partition: str | None
    start_time: datetime | None
    end_time: datetime | None
    seconds: float | None


class DagsterRuns(Part):
    ui_url: str
    runs: list[LandingRun] = []


class SparkMetrics(BaseModel):
    spark: SparkApplication
    landing_runs: DagsterRuns


# ---- /api/kafka -------------------------------------------------------------------------------
class TopicPartitionInfo(BaseModel):
    partition: int
    low: int
    high: int


class TopicInfo(BaseModel):
    name: str
    partitions: list[TopicPartitionInfo]
    messages: int = Field(description="sum over partitions of high - low watermark")


class GroupPartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int | None


class ConsumerGroupInfo(BaseModel):
    group: str
    state: str
    members: int | None
    lag: int | None
    partitions: list[GroupPartitionLag]


class KafkaInfo(Part):
    bootstrap_servers: str
    topics: list[TopicInfo] = []
    consumer_groups: list[ConsumerGroupInfo] = []


# ---- POST /api/generate-test-data -------------------------------------------------------------
class TestDataRequest(BaseModel):
    """A bounded burst of simulated users' events, or one named attack scenario (with its ground truth)."""

    kind: Literal["burst", "scenario"]
    events: int = Field(1000, ge=1, le=100_000, description="burst: how many events")
    rate: int = Field(500, ge=1, le=5_000, description="burst: events per second")
    scenario: str | None = Field(None, max_length=64, description="scenario: its name, see GET /api/generate-test-data")

    model_config = {"extra": "forbid"}


class TestDataJob(BaseModel):
    job_id: str
    kind: Literal["burst", "scenario"]
    status: Literal["running", "finished", "failed"]
    started_at: datetime
    events: int = Field(description="events the job produces")
    rate: float | None = None
    scenario: str | None = None
    expected_rule: str | None = Field(None, description="scenario: the rule it should raise (none for a control)")
    ground_truth: str | None = Field(None, description="where its ground truth is written")


class TestDataOptions(BaseModel):
    enabled: bool = Field(description="false when no DASHBOARD_TOKEN is configured")
    scenarios: list[str]
    max_events: int
    max_rate: int
    running: TestDataJob | None = None
