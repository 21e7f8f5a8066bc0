"""Security alerts from PostgreSQL `security_alerts`: filtered, newest first, paged by a keyset cursor."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from dashboard.sources.database import Database

ALERT_COLUMNS = ("alert_id", "rule", "severity", "source", "user_id", "ip", "window_start", "window_end",
                 "event_count", "evidence_event_ids", "trigger_event_id", "trigger_event_ts", "detected_at",
                 "stored_at", "details")
_SELECT = sql.SQL("SELECT {} FROM security_alerts").format(sql.SQL(", ").join(map(sql.Identifier, ALERT_COLUMNS)))


class BadCursor(ValueError):
    """A `cursor` that this API did not hand out."""


def encode_cursor(detected_at: datetime, alert_id: str) -> str:
    raw = json.dumps([detected_at.isoformat(), alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        detected_at, alert_id = json.loads(raw)
        at = datetime.fromisoformat(detected_at)
        if at.tzinfo is None or not isinstance(alert_id, str):
            raise ValueError
        return at, alert_id
    except (ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor("cursor is not one this API returned: pass next_cursor from a previous page") from None


@dataclass(frozen=True)
class AlertFilter:
    rule: str | None = None
    severity: str | None = None
    source: str | None = None  # as stored: flink_cep | ml_anomaly
    user_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())

    def where(self) -> tuple[list[sql.Composable], list[Any]]:
        clauses, params = [], []
        for column in ("rule", "severity", "source", "user_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if self.since is not None:
            clauses.append(sql.SQL("detected_at >= %s"))
            params.append(self.since)
        if self.until is not None:
            clauses.append(sql.SQL("detected_at < %s"))
            params.append(self.until)
        return clauses, params


async def page(db: Database, filters: AlertFilter, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """Up to `limit` alerts older than `cursor` (newest first) and the cursor of the next page."""
    clauses, params = filters.where()
    if cursor is not None:
        at, alert_id = decode_cursor(cursor)
        clauses.append(sql.SQL("(detected_at, alert_id) < (%s, %s)"))
        params += [at, alert_id]
    query = _SELECT
    if clauses:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
    query += sql.SQL(" ORDER BY detected_at DESC, alert_id DESC LIMIT %s")
    rows = await db.rows(query, [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["detected_at"], rows[-1]["alert_id"]) if more else None
    return rows, next_cursor


async def any_stored(db: Database) -> bool:
    return bool(await db.rows("SELECT 1 FROM security_alerts LIMIT 1"))


async def by_ids(db: Database, alert_ids: list[str]) -> list[dict]:
    """The alerts with these ids, oldest stored first (how the stream announces them)."""
    return await db.rows(_SELECT + sql.SQL(" WHERE alert_id = ANY(%s) ORDER BY stored_at, alert_id"), [alert_ids])


async def stored_since(db: Database, since: datetime, limit: int = 500) -> list[dict]:
    return await db.rows(_SELECT + sql.SQL(" WHERE stored_at >= %s ORDER BY stored_at, alert_id LIMIT %s"),
                         [since, limit])


async def latest_stored_at(db: Database) -> datetime | None:
    rows = await db.rows("SELECT max(stored_at) AS at FROM security_alerts")
    return rows[0]["at"] if rows else None


async def counts(db: Database, since: datetime) -> list[dict]:
    """Alerts per rule, severity and source detected since `since`."""
    return await db.rows(
        "SELECT rule, severity, source, count(*) AS count FROM security_alerts WHERE detected_at >= %s "
        "GROUP BY rule, severity, source ORDER BY count(*) DESC, rule", [since])


LAST_HOUR = timedelta(hours=1)
