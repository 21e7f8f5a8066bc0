"""The CEP job as Flink SQL, compiled from `contract.detection.DetectionThresholds`.

One Kafka source table, a few filtering views, one MATCH_RECOGNIZE per rule and one Kafka sink table; the
rules are combined with UNION ALL into a single INSERT, so the job has one source and one producer.
Pure SQL, no Python UDFs (those batch rows for up to a second). Standard library only: the main
virtualenv's tests read the generated text, the Flink virtualenv runs it.

Two orderings are supported (see flink_cep/README.md for the measurements behind the default):

* ``proctime`` (default): MATCH_RECOGNIZE consumes each user's events in Kafka partition order (events are
  keyed by user_id, so one user's events stay in order) the moment they arrive: no watermark to wait
  for, nothing can be late, an idle partition or an empty topic cannot hold anything back.
* ``rowtime``: ordered by the broker (LogAppendTime) timestamp with a 1 ms watermark bound, per-partition
  idleness and a short auto-watermark interval.

Either way, every time condition of a rule is evaluated on ``occurred_at`` (when the user acted) inside
DEFINE, never on arrival time, so a replay after a restart, a backlog or a simulated-clock run detects
exactly what real time would. Spans are MAX - MIN of occurred_at, so events of one match that arrive
slightly out of occurred_at order are still measured correctly.

Evidence ids are put in event order, (occurred_at, event_id), by the SQL itself: it aggregates
"<occurred_at padded to 15 digits>~<event_id>" strings, sorts them and strips the prefix. That order does
not depend on arrival order, so the same evidence always gives the same alert_id, also for the IP-scoped
rule whose events arrive from several partitions. ``contract.alerts.alert_id`` computes the same value
from the ordered ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from contract.alerts import SOURCE_FLINK_CEP
from contract.detection import (
    RULE_ACCOUNT_TAKEOVER,
    RULE_BRUTE_FORCE,
    RULE_CREDENTIAL_STUFFING,
    RULE_IMPOSSIBLE_TRAVEL,
    RULE_RAPID_ACTIVITY,
    RULE_SEVERITY,
    DetectionThresholds,
)
from flink_cep.settings import PROCTIME, JobSettings

SOURCE_TABLE = "user_events_source"
SINK_TABLE = "security_alerts_sink"
EARTH_RADIUS_KM = 6371.0088  # the same sphere as simulator.geo.haversine_km
HALF_EARTH_CIRCUMFERENCE_KM = 20_016.0
_PAD = 15  # digits of the zero-padded occurred_at in evidence sort keys
_KEY_LEN = _PAD + 1 + 36  # an evidence key: padded occurred_at, '~', a UUID
# event ids are UUIDs (contract.user_events); anything else cannot be evidence (the bronze layer quarantines it)
UUID_RE = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _with(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in options.items())


def _transport(s: JobSettings) -> dict[str, str]:
    """KAFKA_SECURITY's client properties (TLS, SCRAM login) as connector options."""
    return {f"properties.{k}": v for k, v in s.kafka_properties().items()}


# --------------------------------------------------------------------------------------------- tables
def source_ddl(s: JobSettings) -> str:
    """`user-events` as a table. Only the fields the rules read are declared (JSON ignores the rest);
    a message that is not valid JSON yields a row of NULLs, filtered out by `cep_events`."""
    watermark = ""
    if s.time_mode != PROCTIME:
        # LogAppendTime is monotonic per partition; the 1 ms keeps records sharing a millisecond on time.
        watermark = ",\n  WATERMARK FOR broker_ts AS broker_ts - INTERVAL '0.001' SECOND"
    options = {
        "connector": "kafka",
        "topic": s.input_topic,
        "properties.bootstrap.servers": s.bootstrap_servers,
        "properties.group.id": s.group_id,
        "properties.client.id.prefix": s.group_id,
        # restored checkpoints carry their own offsets; without one, continue from the offsets the job
        # committed at its last checkpoint, or from the beginning on a first start (nothing is skipped)
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
        "scan.topic-partition-discovery.interval": "60 s",
        "format": "json",
        "json.ignore-parse-errors": "true",
        "json.fail-on-missing-field": "false",
        **_transport(s),
    }
    return f"""CREATE TABLE {SOURCE_TABLE} (
  event_id STRING,
  event_type STRING,
  user_id STRING,
  occurred_at BIGINT,
  ip STRING,
  country STRING,
  lat DOUBLE,
  lon DOUBLE,
  broker_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  pt AS PROCTIME(){watermark}
) WITH (
  {_with(options)}
)"""


SINK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_id", "STRING"),
    ("rule", "STRING"),
    ("severity", "STRING"),
    ("source", "STRING"),
    ("user_id", "STRING"),
    ("ip", "STRING"),
    ("window_start", "BIGINT"),
    ("window_end", "BIGINT"),
    ("event_count", "INT"),
    ("evidence_event_ids", "ARRAY<STRING>"),
    ("trigger_event_id", "STRING"),
    ("trigger_event_ts", "BIGINT"),
    ("detected_at", "BIGINT"),
    ("details", "MAP<STRING, STRING>"),
)


def sink_ddl(s: JobSettings) -> str:
    """`security-alerts` as a table: JSON values in the contract.alerts shape, keyed by alert_id.

    At-least-once: records are sent as soon as they are produced (linger.ms=0) and flushed at every
    checkpoint. An exactly-once (transactional) sink would only become visible at checkpoints, i.e.
    every FLINK_CHECKPOINT_INTERVAL_S; duplicates are harmless because alert ids are deterministic."""
    columns = ",\n  ".join(f"{name} {sql_type}" for name, sql_type in SINK_COLUMNS)
    options = {
        "connector": "kafka",
        "topic": s.alert_topic,
        "properties.bootstrap.servers": s.bootstrap_servers,
        "key.format": "raw",
        "key.fields": "alert_id",
        "value.format": "json",
        "value.fields-include": "ALL",
        "sink.delivery-guarantee": "at-least-once",
        "properties.linger.ms": "0",
        "properties.acks": "all",
        **_transport(s),
    }
    return f"CREATE TABLE {SINK_TABLE} (\n  {columns}\n) WITH (\n  {_with(options)}\n)"


def _epoch_ms(ts: str) -> str:
    """Epoch milliseconds of a TIMESTAMP_LTZ(3) (the session time zone is UTC, see job.py)."""
    return (
        f"(CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), {ts}) AS BIGINT) * 60000"
        f" + EXTRACT(SECOND FROM {ts}) * 1000 + EXTRACT(MILLISECOND FROM {ts}))"
    )


def view_ddls(s: JobSettings) -> list[str]:
    """Valid events, and the projections each rule reads (narrow rows keep CEP state small)."""
    time_col = _time_col(s)
    base = ["event_id", "user_id", "occurred_at", "broker_ms", time_col]
    return [
        f"""CREATE TEMPORARY VIEW cep_events AS
SELECT event_id, event_type, user_id, occurred_at, ip, country, lat, lon,
  {_epoch_ms("broker_ts")} AS broker_ms, {time_col}
FROM {SOURCE_TABLE}
WHERE event_id IS NOT NULL AND user_id IS NOT NULL AND event_type IS NOT NULL AND occurred_at >= 0
  AND REGEXP(event_id, '{UUID_RE}')""",
        f"""CREATE TEMPORARY VIEW activity AS
SELECT user_id, broker_ms, ip, {_key_of("occurred_at", "event_id")} AS ev_key, {time_col} FROM cep_events""",
        f"""CREATE TEMPORARY VIEW logins AS
SELECT {', '.join(base[:-1])}, event_type, ip, {time_col} FROM cep_events
WHERE event_type IN ('LOGIN_FAILED', 'LOGIN_SUCCESS')""",
        f"""CREATE TEMPORARY VIEW failed_logins AS
SELECT {', '.join(base[:-1])}, ip, {time_col} FROM cep_events WHERE event_type = 'LOGIN_FAILED'""",
        f"""CREATE TEMPORARY VIEW ip_failed_logins AS
SELECT {', '.join(base[:-1])}, ip, {time_col} FROM cep_events
WHERE event_type = 'LOGIN_FAILED' AND ip IS NOT NULL""",
        f"""CREATE TEMPORARY VIEW located_logins AS
SELECT {', '.join(base[:-1])}, ip, country, lat, lon, {time_col} FROM cep_events
WHERE event_type = 'LOGIN_SUCCESS' AND lat IS NOT NULL AND lon IS NOT NULL""",
    ]


def _time_col(s: JobSettings) -> str:
    return "pt" if s.time_mode == PROCTIME else "broker_ts"


# --------------------------------------------------------------------------------------- expressions
def _key_of(occurred_at: str, event_id: str) -> str:
    """Sort key of one evidence row: occurred_at zero-padded, '~', event_id."""
    return f"CONCAT(LPAD(CAST({occurred_at} AS STRING), {_PAD}, '0'), '~', {event_id})"


def _key(var: str) -> str:
    return _key_of(f"{var}.occurred_at", f"{var}.event_id")


def evidence_ids_expr(keys: str) -> str:
    """Comma-joined event ids in (occurred_at, event_id) order, from comma-joined sort keys."""
    # Flink's REGEXP_REPLACE takes the replacement literally (no $1), so the prefix alone is removed:
    # 15 digits and '~' cannot occur inside an event id (a UUID: at most 12 hex digits in a row, no '~').
    return f"REGEXP_REPLACE(ARRAY_JOIN(ARRAY_SORT(SPLIT({keys}, ',')), ','), '[0-9]{{{_PAD}}}~', '')"


def alert_id_expr(rule: str, subject: str, ids: str) -> str:
    """SQL twin of contract.alerts.alert_id: MD5('rule|subject|id1,id2,...')."""
    return f"MD5(CONCAT_WS('|', {_q(rule)}, {subject}, {ids}))"


def haversine_expr(a: str, b: str) -> str:
    """Great-circle distance in km between rows a and b (lat/lon in degrees), as simulator.geo does it."""
    return (
        f"(2 * {EARTH_RADIUS_KM} * ASIN(LEAST(1.0, SQRT("
        f"POWER(SIN(RADIANS({b}.lat - {a}.lat) / 2), 2) + "
        f"COS(RADIANS({a}.lat)) * COS(RADIANS({b}.lat)) * POWER(SIN(RADIANS({b}.lon - {a}.lon) / 2), 2)))))"
    )


@dataclass(frozen=True)
class Rule:
    """One detection: its MATCH_RECOGNIZE and how its measures become an alert."""

    name: str
    detect_sql: str  # a SELECT (MATCH_RECOGNIZE or windowed) yielding the columns alert_select reads
    subject: str  # user_id or ip
    details: dict[str, str]  # detail name -> SQL expression over the match output (cast to STRING)

    @property
    def severity(self) -> str:
        return RULE_SEVERITY[self.name]


def _within(s: JobSettings, seconds: float) -> str:
    """Rowtime only: a WITHIN on broker time, as a bound on CEP state (never the rule's condition).

    In processing time the CEP operator prunes expired partial matches only when the same key sees its
    next event, and a WITHIN on arrival time would wrongly expire matches across a restart, so none."""
    if s.time_mode == PROCTIME:
        return ""
    return f" WITHIN INTERVAL '{int(seconds)}' SECOND"


def _measures(var: str, keys: str, extra: str = "") -> str:
    return f"""MEASURES
    {keys} AS evidence_keys,
    MIN({var}.occurred_at) AS window_start,
    MAX({var}.occurred_at) AS window_end,
    COUNT({var}.event_id) AS event_count,
    LAST({var}.event_id) AS trigger_event_id,
    LAST({var}.broker_ms) AS trigger_event_ts,
    LAST({var}.ip) AS ip{extra}"""


def rules(t: DetectionThresholds, s: JobSettings) -> list[Rule]:
    time_col = _time_col(s)
    slack = 60
    bf_ms = t.brute_force_window_s * 1000
    takeover_ms = t.takeover_success_within_s * 1000
    rapid_ms = t.rapid_activity_window_s * 1000
    stuffing_ms = t.credential_stuffing_window_s * 1000
    distance = haversine_expr("A", "B")
    user_token = "CONCAT('<', F.user_id, '>')"
    user_tokens = "LISTAGG(CONCAT('<', F.user_id, '>'), '')"
    travel_max_s = HALF_EARTH_CIRCUMFERENCE_KM / t.impossible_travel_max_kmh * 3600

    brute_force = f"""SELECT * FROM failed_logins MATCH_RECOGNIZE (
  PARTITION BY user_id ORDER BY {time_col}
  {_measures("F", f"LISTAGG({_key('F')}, ',')")}
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (F{{{t.brute_force_min_failures}}}){_within(s, 2 * t.brute_force_window_s + slack)}
  DEFINE
    F AS MAX(F.occurred_at) - MIN(F.occurred_at) <= {bf_ms}
)"""

    takeover = f"""SELECT * FROM logins MATCH_RECOGNIZE (
  PARTITION BY user_id ORDER BY {time_col}
  MEASURES
    CONCAT(LISTAGG({_key('F')}, ','), ',', {_key('S')}) AS evidence_keys,
    MIN(F.occurred_at) AS window_start,
    S.occurred_at AS window_end,
    COUNT(F.event_id) + 1 AS event_count,
    S.event_id AS trigger_event_id,
    S.broker_ms AS trigger_event_ts,
    S.ip AS ip,
    COUNT(F.event_id) AS failures,
    S.occurred_at - MAX(F.occurred_at) AS success_after_ms
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (F{{{t.brute_force_min_failures},}} S){_within(s, 2 * (t.brute_force_window_s + t.takeover_success_within_s) + slack)}
  DEFINE
    F AS F.event_type = 'LOGIN_FAILED' AND MAX(F.occurred_at) - MIN(F.occurred_at) <= {bf_ms},
    S AS S.event_type = 'LOGIN_SUCCESS' AND S.occurred_at - MAX(F.occurred_at) BETWEEN 0 AND {takeover_ms}
)"""

    # Rapid activity is the one rule on every event, so it is the one whose cost matters (measured below,
    # flink_cep/README.md): a bounded ROWS window per user, ONE aggregate, and only alerts leave the
    # operator. The window holds the user's last M+2 events (arrival order) as fixed-width evidence keys
    # "<15-digit occurred_at>~<36-char event id>" (53 characters and a comma each), so the occurred_at of
    # any position is a SUBSTRING: a burst is M+1 consecutive events within W, and an alert is raised
    # where the last M+1 form a burst and the M+1 before them did not (one alert per continuous burst,
    # with exactly its M+1 events as evidence). Spans assume a user's events arrive in occurred_at order,
    # which holds for one producer per user keying by user_id. The window's rows are kept narrow (the
    # current event's id and time are read back from its key): this state is the job's largest, it is
    # copied on write while a checkpoint is taken and snapshotted every FLINK_CHECKPOINT_INTERVAL_S.
    n_rapid = t.rapid_activity_max_events + 1
    key_len = _KEY_LEN + 1
    last = f"SUBSTRING(recent FROM {key_len + 1})"  # the last M+1 keys once the window is full

    def occurred(position: str) -> str:
        return f"CAST(SUBSTRING(recent FROM {position} FOR {_PAD}) AS BIGINT)"

    full = f"CHAR_LENGTH(recent) = {(n_rapid + 1) * key_len - 1}"
    first_time = f"CHAR_LENGTH(recent) = {n_rapid * key_len - 1}"
    rapid = f"""SELECT user_id, ip, evidence_keys, window_start, window_end, event_count, trigger_event_id, trigger_event_ts
FROM (
  SELECT user_id, ip, trigger_event_ts, {n_rapid} AS event_count,
    SUBSTRING(recent FROM CHAR_LENGTH(recent) - 35) AS trigger_event_id,
    CAST(SUBSTRING(recent FROM CHAR_LENGTH(recent) - {_KEY_LEN - 1} FOR {_PAD}) AS BIGINT) AS window_end,
    CASE WHEN {full} THEN {occurred(key_len + 1)} ELSE {occurred(1)} END AS window_start,
    CASE WHEN {full} THEN {last} ELSE recent END AS evidence_keys,
    CASE WHEN {full} THEN {occurred(n_rapid * key_len + 1 - key_len)} - {occurred(1)} <= {rapid_ms} ELSE FALSE END
      AS previous_burst,
    {full} OR {first_time} AS enough
  FROM (
    SELECT user_id, ip, broker_ms AS trigger_event_ts,
      LISTAGG(ev_key, ',') OVER (
        PARTITION BY user_id ORDER BY {time_col} ROWS BETWEEN {n_rapid} PRECEDING AND CURRENT ROW) AS recent
    FROM activity
  )
)
WHERE enough AND window_end - window_start <= {rapid_ms} AND NOT previous_burst"""

    travel = f"""SELECT * FROM located_logins MATCH_RECOGNIZE (
  PARTITION BY user_id ORDER BY {time_col}
  MEASURES
    CONCAT({_key('A')}, ',', {_key('B')}) AS evidence_keys,
    LEAST(A.occurred_at, B.occurred_at) AS window_start,
    GREATEST(A.occurred_at, B.occurred_at) AS window_end,
    2 AS event_count,
    B.event_id AS trigger_event_id,
    B.broker_ms AS trigger_event_ts,
    B.ip AS ip,
    {distance} AS distance_km,
    ABS(B.occurred_at - A.occurred_at) AS elapsed_ms,
    A.country AS from_country,
    B.country AS to_country
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO NEXT ROW
  PATTERN (A B){_within(s, travel_max_s + slack)}
  DEFINE
    B AS {distance} > {float(t.impossible_travel_min_km)}
      AND {distance} * 3600000 > {float(t.impossible_travel_max_kmh)} * ABS(B.occurred_at - A.occurred_at)
)"""

    stuffing = f"""SELECT * FROM ip_failed_logins MATCH_RECOGNIZE (
  PARTITION BY ip ORDER BY {time_col}
  MEASURES
    LISTAGG({_key('F')}, ',') AS evidence_keys,
    MIN(F.occurred_at) AS window_start,
    MAX(F.occurred_at) AS window_end,
    COUNT(F.event_id) AS event_count,
    LAST(F.event_id) AS trigger_event_id,
    LAST(F.broker_ms) AS trigger_event_ts
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (F{{{t.credential_stuffing_min_users}}}){_within(s, 2 * t.credential_stuffing_window_s + slack)}
  DEFINE
    F AS MAX(F.occurred_at) - MIN(F.occurred_at) <= {stuffing_ms}
      AND CHAR_LENGTH({user_tokens}) - CHAR_LENGTH(REPLACE({user_tokens}, {user_token}, ''))
          = CHAR_LENGTH({user_token})
)"""

    return [
        Rule(RULE_BRUTE_FORCE, brute_force, "user_id", {"failures": "event_count"}),
        Rule(
            RULE_ACCOUNT_TAKEOVER,
            takeover,
            "user_id",
            {"failures": "failures", "success_after_ms": "success_after_ms"},
        ),
        Rule(RULE_RAPID_ACTIVITY, rapid, "user_id", {"events": "event_count", "span_ms": "window_end - window_start"}),
        Rule(
            RULE_IMPOSSIBLE_TRAVEL,
            travel,
            "user_id",
            {
                "distance_km": "ROUND(distance_km, 1)",
                "speed_kmh": "ROUND(distance_km * 3600000 / GREATEST(elapsed_ms, 1), 1)",
                "elapsed_ms": "elapsed_ms",
                "from_country": "from_country",
                "to_country": "to_country",
            },
        ),
        Rule(RULE_CREDENTIAL_STUFFING, stuffing, "ip", {"distinct_users": "event_count"}),
    ]


def alert_select(rule: Rule) -> str:
    """The match output of one rule in the shape of the sink (contract.alerts)."""
    ids = evidence_ids_expr("evidence_keys")
    user_id = "CAST(NULL AS STRING)" if rule.subject == "ip" else "user_id"
    details = ", ".join(f"{_q(k)}, CAST({v} AS STRING)" for k, v in rule.details.items())
    return f"""SELECT
  {alert_id_expr(rule.name, rule.subject, ids)} AS alert_id,
  {_q(rule.name)} AS rule,
  {_q(rule.severity)} AS severity,
  {_q(SOURCE_FLINK_CEP)} AS source,
  {user_id} AS user_id,
  ip,
  window_start,
  window_end,
  CAST(event_count AS INT) AS event_count,
  SPLIT({ids}, ',') AS evidence_event_ids,
  trigger_event_id,
  trigger_event_ts,
  {_epoch_ms("CURRENT_TIMESTAMP")} AS detected_at,
  MAP[{details}] AS details
FROM (
{rule.detect_sql}
)"""


def insert_sql(t: DetectionThresholds, s: JobSettings) -> str:
    union = "\nUNION ALL\n".join(alert_select(r) for r in rules(t, s) if r.name in s.rules)
    return f"INSERT INTO {SINK_TABLE}\n{union}"


def job_statements(t: DetectionThresholds, s: JobSettings) -> list[str]:
    """Every statement of the job, in order; the last one is the INSERT that starts it."""
    return [source_ddl(s), sink_ddl(s), *view_ddls(s), insert_sql(t, s)]


def job_version(t: DetectionThresholds, s: JobSettings) -> str:
    """Identifies the job's state layout: checkpoints of another version (other thresholds, ordering or
    topics) are not restored into this one, because MATCH_RECOGNIZE state is tied to its pattern."""
    # where the job connects and how it logs in are not part of its state
    text = "\n;\n".join(job_statements(t, replace(s, kafka_security="plaintext"))).replace(s.bootstrap_servers, "")
    return hashlib.sha256(text.encode()).hexdigest()[:12]
