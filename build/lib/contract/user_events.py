"""The user-event contract: one JSON object per Kafka message on `user-events`, keyed by `user_id`.

This module is the single definition of the event shape. The simulator encodes with it, the Spark
bronze parser validates against it (`SPARK_SCHEMA_DDL`, the limits and the reasons below) and the Flink
sidecar derives its source table from the same field list. It imports nothing outside the standard
library so that every virtualenv (main, Flink) can use it.

Wire format (schema_version 1)::

    {
      "event_id": "7b0c…",            # UUID string, the deduplication key             (required)
      "event_type": "LOGIN_FAILED",   # one of EventType                               (required)
      "user_id": "u-000042",          # non-empty string, also the Kafka message key   (required)
      "session_id": "s-…",            # string or null
      "occurred_at": 1764114378123,   # epoch milliseconds, UTC, when the user acted   (required)
      "ip": "203.0.113.7",            # string or null
      "country": "DE",                # ISO 3166-1 alpha-2 or null
      "lat": 52.52, "lon": 13.40,     # WGS84 degrees or null (both or neither)
      "device_id": "d-…", "user_agent": "…",
      "properties": {"amount": "19.99"},  # flat object, values carried as strings
      "schema_version": 1             # must equal SCHEMA_VERSION                      (required)
    }
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum

SCHEMA_VERSION = 1

# Payloads larger than this are quarantined unread (configurable per run; this is the default).
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
# `occurred_at` later than the broker timestamp by more than this is quarantined as future-dated.
DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60 * 1000


class EventType(StrEnum):
    USER_REGISTERED = "USER_REGISTERED"
    LOGIN_SUCCESS = "LOGIN_SUCCESS"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGOUT = "LOGOUT"
    PAGE_VIEW = "PAGE_VIEW"
    SEARCH = "SEARCH"
    ADD_TO_CART = "ADD_TO_CART"
    PURCHASE = "PURCHASE"
    PASSWORD_RESET = "PASSWORD_RESET"
    PROFILE_UPDATE = "PROFILE_UPDATE"


EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)


class QuarantineReason(StrEnum):
    """Why a message did not make it into bronze. Stored verbatim in `bronze_quarantine.reason`."""

    EMPTY_PAYLOAD = "empty_payload"
    OVERSIZED_PAYLOAD = "oversized_payload"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    MISSING_FIELD = "missing_field"  # stored as "missing_field:<name>"
    WRONG_TYPE = "wrong_type"  # stored as "wrong_type:<name>"
    INVALID_EVENT_ID = "invalid_event_id"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_COORDINATES = "invalid_coordinates"
    FUTURE_TIMESTAMP = "future_timestamp"
    DUPLICATE_EVENT_ID = "duplicate_event_id"


@dataclass(frozen=True)
class Field:
    name: str
    spark_type: str  # Spark SQL DDL type
    required: bool


FIELDS: tuple[Field, ...] = (
    Field("event_id", "STRING", True),
    Field("event_type", "STRING", True),
    Field("user_id", "STRING", True),
    Field("session_id", "STRING", False),
    Field("occurred_at", "BIGINT", True),
    Field("ip", "STRING", False),
    Field("country", "STRING", False),
    Field("lat", "DOUBLE", False),
    Field("lon", "DOUBLE", False),
    Field("device_id", "STRING", False),
    Field("user_agent", "STRING", False),
    Field("properties", "MAP<STRING, STRING>", False),
    Field("schema_version", "INT", True),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
# Spark DDL of the payload, for `from_json`. Versioned together with SCHEMA_VERSION.
SPARK_SCHEMA_DDL = ", ".join(f"{f.name} {f.spark_type}" for f in FIELDS)


@dataclass(frozen=True)
class UserEvent:
    event_id: str
    event_type: str
    user_id: str
    occurred_at: int
    session_id: str | None = None
    ip: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    device_id: str | None = None
    user_agent: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")

    def key(self) -> bytes:
        return self.user_id.encode("utf-8")

    @classmethod
    def from_json(cls, payload: bytes | str) -> UserEvent:
        """Decode a well-formed event (raises on anything else; the bronze parser is the lenient path)."""
        data = json.loads(payload)
        unknown = set(data) - set(FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        return cls(**data)
