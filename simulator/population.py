"""The simulated user base: who exists, which persona each follows, where they live, what they use.

Every device of every user gets an IP of its own, so no IP is ever shared between two users: failed
logins of one IP can then only concern one background user, and credential stuffing (one IP against
many users) appears only where a scenario injects it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from simulator.encoding import device_fragment
from simulator.geo import CITIES, CITY_WEIGHTS, City, jitter
from simulator.personas import PERSONAS, Persona

HOME_JITTER_KM = 12.0  # homes are scattered around their city
USER_AGENTS: dict[str, tuple[str, ...]] = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    "bot": (
        "python-requests/2.32.3",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "Scrapy/2.12.0 (+https://scrapy.org)",
    ),
}


class IpPool:
    """Hands out distinct IPv4 addresses from a base upwards, skipping .0 and .255 host octets.
    `taken` addresses were handed out already (a restored pool continues after them)."""

    def __init__(self, base: str, taken: int = 0):
        a, b, c, d = (int(x) for x in base.split("."))
        self._base = (a << 24) | (b << 16) | (c << 8) | d
        self._next = taken

    @property
    def taken(self) -> int:
        return self._next

    def take(self) -> str:
        k = self._next
        self._next += 1
        n = self._base + (k // 254) * 256 + k % 254 + 1
        return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@dataclass(frozen=True)
class Device:
    kind: str
    device_id: str
    user_agent: str
    ip: str

    @cached_property
    def json_fragment(self) -> str:
        """The device's members of every event it makes, encoded once."""
        return device_fragment(self.device_id, self.user_agent)


class User:
    """A user and the state the traffic generator keeps to stay below every rule threshold."""

    __slots__ = (
        "city",
        "devices",
        "drift",
        "failures",
        "home_lat",
        "home_lon",
        "index",
        "last_country",
        "last_lat",
        "last_lon",
        "last_ts",
        "next_free_ms",
        "persona",
        "registers",
        "scenario_id",
        "user_id",
    )

    def __init__(
        self,
        index: int,
        user_id: str,
        persona: Persona,
        city: City,
        home: tuple[float, float],
        devices: tuple[Device, ...],
        registers: bool,
    ):
        self.index = index
        self.user_id = user_id
        self.persona = persona
        self.city = city
        self.home_lat, self.home_lon = home
        self.devices = devices
        self.registers = registers  # a new account: its first session starts with USER_REGISTERED
        self.drift: str | None = None  # set for users whose behaviour drifts (simulator.drift)
        self.scenario_id: str | None = None  # set for users dedicated to one injected scenario
        self.next_free_ms = 0  # earliest time the next event of this user may occur
        self.last_ts: int | None = None  # time and place of the user's latest event
        self.last_country = city.country
        self.last_lat = self.home_lat
        self.last_lon = self.home_lon
        self.failures: list[int] = []  # times of recent background LOGIN_FAILED

    def record(self) -> dict:
        """The user's row in users.jsonl (ground truth for segmentation and anomaly evaluation)."""
        return {
            "user_id": self.user_id,
            "persona": self.persona.name if self.scenario_id is None else "scenario_user",
            "home_city": self.city.name,
            "home_country": self.city.country,
            "home_lat": self.home_lat,
            "home_lon": self.home_lon,
            "utc_offset_h": self.city.utc_offset_h,
            "devices": [
                {"kind": d.kind, "device_id": d.device_id, "user_agent": d.user_agent, "ip": d.ip}
                for d in self.devices
            ],
            "drift": self.drift,
            "scenario_id": self.scenario_id,
        }


def user_id_for(index: int) -> str:
    return f"u-{index:06d}"


def new_device(rng: random.Random, kind: str, ips: IpPool) -> Device:
    return Device(kind, f"d-{rng.getrandbits(48):012x}", rng.choice(USER_AGENTS[kind]), ips.take())


def new_user(rng: random.Random, index: int, persona: Persona, ips: IpPool, city: City | None = None) -> User:
    city = city or rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
    kinds = persona.devices[: rng.randint(1, len(persona.devices))]
    devices = tuple(new_device(rng, kind, ips) for kind in kinds)
    home = jitter(rng, city.lat, city.lon, HOME_JITTER_KM)
    return User(index, user_id_for(index), persona, city, home, devices, registers=rng.random() < 0.02)


def build_population(rng: random.Random, size: int, ips: IpPool, first_index: int = 0) -> list[User]:
    """`size` users with personas drawn by their population shares; deterministic for a given rng."""
    shares = [p.share for p in PERSONAS]
    personas = rng.choices(PERSONAS, weights=shares, k=size)
    return [new_user(rng, first_index + i, persona, ips) for i, persona in enumerate(personas)]
