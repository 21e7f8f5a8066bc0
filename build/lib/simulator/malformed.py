"""Malformed messages, each wrong in exactly one way and tagged with the quarantine reason it must get.

Every class of fault the bronze parser must quarantine is produced in turn, so even a short run covers
them all. Apart from the duplicate (the exact bytes of a background event, re-sent right after it
under the same key), a malformed message is built from a background event with a fresh event_id, the
user id `malformed-<n>` (its Kafka key) and event type PAGE_VIEW, then broken in one place. That
keeps malformed messages out of every CEP rule even where a lenient reader accepts them: no user or
IP gains a login or an event count from them.

A JSON value that is not an object (an array, a double-encoded string) is quarantined as
`invalid_json`: the contract has no separate reason for the shape of a payload.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from itertools import cycle

from contract.user_events import FIELDS, REQUIRED_FIELDS, SCHEMA_VERSION, QuarantineReason
from simulator.encoding import uuid4_from
from simulator.truth import MalformedRecord

HEADER_EXPECTED = "sim-expected"  # Kafka header carrying the expected quarantine reason
KIND_MALFORMED = "malformed"
KIND_DUPLICATE = "duplicate"

R = QuarantineReason
_WRONG_TYPE_FIELDS = tuple(f.name for f in FIELDS if f.spark_type != "STRING")


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _empty(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    return b"", R.EMPTY_PAYLOAD, "empty"


def _oversized(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    """A valid event padded past the limit by up to 1 KiB: only its size is wrong."""
    event["properties"]["padding"] = ""
    pad = limit - len(_dumps(event)) + 1 + rng.randrange(0, 1024)
    event["properties"]["padding"] = "x" * pad
    return _dumps(event), R.OVERSIZED_PAYLOAD, "padded"


def _invalid_utf8(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    """A valid event whose user agent holds bytes that are not UTF-8 (decoded leniently, it is valid)."""
    bad, variant = (
        (b"\xc3\x28", "invalid_continuation"),
        (b"\xff\xfe", "invalid_byte"),
        (b"\xc0\xaf", "overlong"),
        (b"\xed\xa0\x80", "surrogate"),
    )[i % 4]
    event["user_agent"] = "@@UA@@"
    return _dumps(event).replace(b"@@UA@@", b"Mozilla/5.0 " + bad), R.INVALID_UTF8, variant


def _invalid_json(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    text = _dumps(event)
    if i % 3 == 0:
        return text[: rng.randrange(1, len(text) - 1)], R.INVALID_JSON, "truncated"
    if i % 3 == 1:
        return text.replace(b'","event_type"', b'" "event_type"', 1), R.INVALID_JSON, "missing_comma"
    pairs = ";".join(f"{k}={v}" for k, v in event.items() if not isinstance(v, dict))
    return pairs.encode(), R.INVALID_JSON, "key_value_text"


def _not_object(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    if i % 2 == 0:
        return _dumps([v for v in event.values() if not isinstance(v, dict)]), R.INVALID_JSON, "array"
    return _dumps(_dumps(event).decode()), R.INVALID_JSON, "double_encoded_string"


def _missing_field(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    name = REQUIRED_FIELDS[i % len(REQUIRED_FIELDS)]
    del event[name]
    return _dumps(event), f"{R.MISSING_FIELD}:{name}", name


def _wrong_type(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    """A non-STRING field as a JSON string (Spark coerces anything into STRING fields, so not those)."""
    name = _WRONG_TYPE_FIELDS[i % len(_WRONG_TYPE_FIELDS)]
    value = event[name]
    variant = f"{name}_as_string"
    if name == "properties":
        event[name] = ";".join(f"{k}={v}" for k, v in value.items())
    elif name == "occurred_at" and (i // len(_WRONG_TYPE_FIELDS)) % 2 == 0:
        event[name], variant = "2026-11-25T23:47:00.000Z", "occurred_at_as_iso_string"
    else:
        event[name] = str(value)
    return _dumps(event), f"{R.WRONG_TYPE}:{name}", variant


def _invalid_event_id(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    event_id = event["event_id"]
    event["event_id"], variant = (
        (f"evt-{rng.randrange(10**9)}", "not_a_uuid"),
        (event_id[:-4], "truncated"),
        (event_id[:9] + "zzzz" + event_id[13:], "non_hex"),
    )[i % 3]
    return _dumps(event), R.INVALID_EVENT_ID, variant


def _unknown_event_type(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    event["event_type"] = ("TELEPORT", "CHECKOUT_STARTED", "LOGIN_MAYBE")[i % 3]
    return _dumps(event), R.UNKNOWN_EVENT_TYPE, event["event_type"]


def _invalid_coordinates(event: dict, rng: random.Random, i: int, limit: int) -> tuple[bytes, str, str]:
    if i % 3 == 0:
        event["lat"], variant = round(rng.uniform(90.5, 180.0), 4), "lat_out_of_range"
    elif i % 3 == 1:
        event["lon"], variant = round(rng.uniform(-360.0, -180.5), 4), "lon_out_of_range"
    else:
        event["lon"], variant = None, "lat_without_lon"
    return _dumps(event), R.INVALID_COORDINATES, variant


def _unsupported_schema_version(
    event: dict, rng: random.Random, i: int, limit: int
) -> tuple[bytes, str, str]:
    event["schema_version"] = (SCHEMA_VERSION + 1, 0, 99)[i % 3]
    return _dumps(event), R.UNSUPPORTED_SCHEMA_VERSION, f"version_{event['schema_version']}"


_Builder = Callable[[dict, random.Random, int, int], tuple[bytes, str, str]]
# The rotation: each entry is one class of fault; "future" and "duplicate" need the stream's context.
CLASSES: tuple[str, ...] = (
    "empty",
    "oversized",
    "invalid_utf8",
    "invalid_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_event_id",
    "unknown_event_type",
    "invalid_coordinates",
    "future_timestamp",
    "unsupported_schema_version",
    "duplicate",
)
_BUILDERS: dict[str, _Builder] = {
    "empty": _empty,
    "oversized": _oversized,
    "invalid_utf8": _invalid_utf8,
    "invalid_json": _invalid_json,
    "not_object": _not_object,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "invalid_event_id": _invalid_event_id,
    "unknown_event_type": _unknown_event_type,
    "invalid_coordinates": _invalid_coordinates,
    "unsupported_schema_version": _unsupported_schema_version,
}


class MalformedFactory:
    """Makes the next malformed message from a background event, rotating through `CLASSES`."""

    def __init__(self, rng: random.Random, max_payload_bytes: int, future_offset_ms: int):
        self._rng = rng
        self._limit = max_payload_bytes
        self._future_offset_ms = future_offset_ms
        self._classes = cycle(CLASSES)
        self._turns = dict.fromkeys(CLASSES, 0)
        self._seq = 0

    def make(self, key: bytes, value: bytes, occurred_at: int) -> tuple[bytes, bytes, MalformedRecord]:
        """(key, payload, record) of the next malformed message, after the event (`key`, `value`)."""
        name = next(self._classes)
        turn = self._turns[name]
        self._turns[name] = turn + 1
        seq = self._seq
        self._seq += 1
        if name == "duplicate":
            record = MalformedRecord(seq, key.decode(), R.DUPLICATE_EVENT_ID, "same_bytes", occurred_at)
            return key, value, record
        event = json.loads(value)
        malformed_key = f"malformed-{seq}"
        event.update(event_id=uuid4_from(self._rng), user_id=malformed_key, event_type="PAGE_VIEW")
        if name == "future_timestamp":
            event["occurred_at"] = occurred_at + self._future_offset_ms
            payload, reason, variant = _dumps(event), R.FUTURE_TIMESTAMP, f"plus_{self._future_offset_ms}ms"
        else:
            payload, reason, variant = _BUILDERS[name](event, self._rng, turn, self._limit)
        return (
            malformed_key.encode(),
            payload,
            MalformedRecord(seq, malformed_key, str(reason), variant, occurred_at),
        )
