"""Fast, byte-exact encoding of contract events.

`json.dumps` of a whole event per message would cap the simulator well below the 100k msgs/s a
benchmark needs. A session's constant fields (session, IP, place, device) are encoded once into a
fragment, and each event is one f-string around it. The bytes are identical to
`contract.user_events.UserEvent.to_json()` (same field order, separators and float repr), which the
unit tests pin, so a consumer cannot tell the two encoders apart.
"""

from __future__ import annotations

import json
import random

from contract.user_events import SCHEMA_VERSION

_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def uuid4_from(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng`, so that a seed reproduces every event id."""
    h = ((rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def session_fragment(
    session_id: str | None,
    ip: str | None,
    country: str | None,
    lat: float | None,
    lon: float | None,
    device_id: str | None,
    user_agent: str | None,
) -> str:
    """The JSON members from session_id to user_agent, without braces, for `encode_event`."""
    return place_fragment(session_id, ip, country, lat, lon) + device_fragment(device_id, user_agent)


def place_fragment(
    session_id: str | None, ip: str | None, country: str | None, lat: float | None, lon: float | None
) -> str:
    """session_id to lon. Ids, IPs and country codes are generated here and need no JSON escaping; this
    runs once per session, where `json.dumps` would cost more than all the session's events."""
    return (
        f'"session_id":{_plain(session_id)},"ip":{_plain(ip)},"country":{_plain(country)},'
        f'"lat":{_number(lat)},"lon":{_number(lon)}'
    )


def device_fragment(device_id: str | None, user_agent: str | None) -> str:
    """device_id and user_agent, with a leading comma; encode once per device."""
    return f',"device_id":{json.dumps(device_id)},"user_agent":{json.dumps(user_agent)}'


def _plain(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def _number(value: float | None) -> str:
    return "null" if value is None else repr(float(value))  # json.dumps writes floats as repr()


def properties_json(properties: dict[str, str]) -> str:
    return json.dumps(properties, separators=(",", ":"))


def encode_event(
    event_id: str, event_type: str, user_id: str, occurred_at: int, fragment: str, properties: str = "{}"
) -> bytes:
    """One event's payload. `user_id` and `event_type` must need no JSON escaping (ids, enum names)."""
    return (
        f'{{"event_id":"{event_id}","event_type":"{event_type}","user_id":"{user_id}",'
        f'"occurred_at":{occurred_at},{fragment},"properties":{properties},'
        f'"schema_version":{SCHEMA_VERSION}}}'
    ).encode()
