"""Injected security scenarios, each with ground-truth labels: attacks that cross one CEP threshold and
controls that stay just under it.

Every scenario has users of its own (never picked by background traffic) and attacker IPs from a
range no user owns, so an alert on a scenario's user or IP can be scored unambiguously. Timings are
derived from `contract.detection.DetectionThresholds`, so the scenarios follow the thresholds the CEP
job is configured with. Positives cross the threshold by the smallest step (N failures, M+1 events,
K users), controls miss it by the smallest step (N-1, exactly M, K-1) or by a margin in time/speed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from contract.detection import (
    RULE_ACCOUNT_TAKEOVER,
    RULE_BRUTE_FORCE,
    RULE_CREDENTIAL_STUFFING,
    RULE_IMPOSSIBLE_TRAVEL,
    RULE_RAPID_ACTIVITY,
    DetectionThresholds,
)
from simulator.encoding import encode_event, properties_json, session_fragment, uuid4_from
from simulator.geo import CITIES, CITY_WEIGHTS, City, destination, haversine_km, jitter
from simulator.population import USER_AGENTS, IpPool, User
from simulator.truth import Label

KIND_SCENARIO = "scenario"
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Access:
    """Where and with what an event was made: the fields of a contract event besides its type."""

    ip: str
    country: str
    lat: float
    lon: float
    device_id: str
    user_agent: str


@dataclass
class Plan:
    """A scenario ready to be merged into the stream: its users, labels and encoded events."""

    scenario_id: str
    scenario: str
    users: list[User] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    # (occurred_at, kafka key, payload, event_id, labels the event belongs to)
    events: list[tuple[int, bytes, bytes, str, tuple[Label, ...]]] = field(default_factory=list)

    @property
    def end_ms(self) -> int:
        return max(e[0] for e in self.events)


class ScenarioContext:
    """What scenario templates draw on: randomness, thresholds, fresh users and attacker IPs."""

    def __init__(
        self,
        rng: random.Random,
        thresholds: DetectionThresholds,
        new_user: Callable[[City], User],
        attacker_ips: IpPool,
    ):
        self.rng = rng
        self.t = thresholds
        self.new_user = new_user
        self.attacker_ips = attacker_ips
        self.position_jitter_km = min(2.0, 0.05 * thresholds.impossible_travel_min_km)
        lo, hi = 1.2 * thresholds.impossible_travel_min_km, 3.0 * thresholds.impossible_travel_min_km
        self.travel_pairs = [
            (a, b)
            for a in CITIES
            for b in CITIES
            if a is not b and lo <= haversine_km(a.lat, a.lon, b.lat, b.lon) <= hi
        ]

    def city(self, not_country: str | None = None) -> City:
        while True:
            city = self.rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
            if city.country != not_country:
                return city

    def home_access(self, user: User) -> Access:
        device = user.devices[0]
        lat, lon = jitter(self.rng, user.home_lat, user.home_lon, self.position_jitter_km)
        return Access(device.ip, user.city.country, lat, lon, device.device_id, device.user_agent)

    def attacker_access(self, city: City, bot: bool = True) -> Access:
        """A fresh attacker (IP from the attacker range, own device) somewhere around `city`."""
        lat, lon = jitter(self.rng, city.lat, city.lon, self.position_jitter_km)
        return self.access_at(city.country, lat, lon, bot)

    def access_at(self, country: str, lat: float, lon: float, bot: bool = False) -> Access:
        agent = self.rng.choice(USER_AGENTS["bot" if bot else "desktop"])
        return Access(
            self.attacker_ips.take(), country, lat, lon, f"d-{self.rng.getrandbits(48):012x}", agent
        )


class _Builder:
    def __init__(self, ctx: ScenarioContext, scenario_id: str, scenario: str):
        self.ctx = ctx
        self.plan = Plan(scenario_id, scenario)

    def user(self, city: City | None = None) -> User:
        user = self.ctx.new_user(city or self.ctx.city())
        user.scenario_id = self.plan.scenario_id
        self.plan.users.append(user)
        return user

    def label(self, rule: str, expected: bool, user: User | None, ip: str | None, **details: object) -> Label:
        label = Label(
            self.plan.scenario_id,
            self.plan.scenario,
            user.user_id if user else None,
            ip,
            rule,
            expected,
            details={k: str(v) for k, v in details.items()},
        )
        self.plan.labels.append(label)
        return label

    def event(
        self,
        user: User,
        ts: int,
        event_type: str,
        access: Access,
        labels: tuple[Label, ...],
        properties: dict[str, str] | None = None,
        session_id: str | None = None,
    ) -> None:
        event_id = uuid4_from(self.ctx.rng)
        fragment = session_fragment(
            session_id, access.ip, access.country, access.lat, access.lon, access.device_id, access.user_agent
        )
        payload = encode_event(
            event_id, event_type, user.user_id, ts, fragment, properties_json(properties or {})
        )
        self.plan.events.append((ts, user.user_id.encode(), payload, event_id, labels))

    def session_id(self) -> str:
        return f"s-{self.ctx.rng.getrandbits(64):016x}"


def _failures(
    b: _Builder, victim: User, start: int, count: int, attacker: Access, labels: tuple[Label, ...]
) -> int:
    """`count` failed logins within half the brute-force (and takeover) window; returns the last time."""
    t = b.ctx.t
    span = min(t.brute_force_window_s, t.takeover_success_within_s) * 1000 // 2
    step = span // max(1, count - 1)
    for i in range(count):
        b.event(victim, start + i * step, "LOGIN_FAILED", attacker, labels, {"reason": "bad_password"})
    return start + (count - 1) * step


def brute_force(b: _Builder, start: int, positive: bool) -> None:
    n = b.ctx.t.brute_force_min_failures - (0 if positive else 1)
    victim = b.user()
    attacker = b.ctx.attacker_access(b.ctx.city(not_country=victim.city.country))
    label = b.label(RULE_BRUTE_FORCE, positive, victim, attacker.ip, failures=n)
    _failures(b, victim, start, n, attacker, (label,))


def account_takeover(b: _Builder, start: int, failures: int, success_after_ms: int) -> None:
    """`failures` failed logins, a success `success_after_ms` after the last, then the attacker's spree."""
    t = b.ctx.t
    victim = b.user()
    attacker = b.ctx.attacker_access(b.ctx.city(not_country=victim.city.country), bot=False)
    crosses_bf = failures >= t.brute_force_min_failures
    takeover = b.label(
        RULE_ACCOUNT_TAKEOVER,
        crosses_bf and success_after_ms <= t.takeover_success_within_s * 1000,
        victim,
        attacker.ip,
        failures=failures,
        success_after_ms=success_after_ms,
    )
    burst = b.label(RULE_BRUTE_FORCE, crosses_bf, victim, attacker.ip, failures=failures)
    last = _failures(b, victim, start, failures, attacker, (takeover, burst))
    session = b.session_id()
    ts = last + success_after_ms
    b.event(victim, ts, "LOGIN_SUCCESS", attacker, (takeover,), {"method": "password"}, session)
    b.event(victim, ts + 20_000, "PROFILE_UPDATE", attacker, (takeover,), {"field": "email"}, session)
    amount = f"{b.ctx.rng.uniform(800, 2500):.2f}"
    b.event(
        victim,
        ts + 60_000,
        "PURCHASE",
        attacker,
        (takeover,),
        {
            "order_id": f"o-{b.ctx.rng.getrandbits(40):010x}",
            "amount": amount,
            "currency": "USD",
            "items": "1",
        },
        session,
    )
    b.event(victim, ts + 90_000, "LOGOUT", attacker, (takeover,), {}, session)


def rapid_activity(b: _Builder, start: int, positive: bool) -> None:
    """M+1 (positive) or exactly M (control) events of one user within half the rapid window."""
    t = b.ctx.t
    n = t.rapid_activity_max_events + (1 if positive else 0)
    user = b.user()
    access = replace(b.ctx.home_access(user), user_agent=b.ctx.rng.choice(USER_AGENTS["bot"]))
    label = b.label(RULE_RAPID_ACTIVITY, positive, user, access.ip, events=n)
    step = t.rapid_activity_window_s * 1000 // 2 // max(1, n - 1)
    session = b.session_id()
    b.event(user, start, "LOGIN_SUCCESS", access, (label,), {"method": "password"}, session)
    for i in range(1, n):
        page = f"/product/{b.ctx.rng.randrange(1, 50_000)}"
        b.event(user, start + i * step, "PAGE_VIEW", access, (label,), {"page": page}, session)


def impossible_travel(b: _Builder, start: int, speed_factor: float, deadline: int | None) -> bool:
    """Two logins of one user, far apart (> min_km), at `speed_factor` times the speed limit.

    Returns False when no city pair fits before `deadline` (slow controls can take an hour)."""
    ctx, t = b.ctx, b.ctx.t
    if ctx.travel_pairs:
        pairs = ctx.travel_pairs
        if deadline is not None:
            max_h = (deadline - start - 60_000) / _HOUR_MS
            max_km = 0.9 * max_h * speed_factor * t.impossible_travel_max_kmh
            pairs = [(a, c) for a, c in pairs if haversine_km(a.lat, a.lon, c.lat, c.lon) < max_km]
        if not pairs:
            return False
        home_city, far = ctx.rng.choice(pairs)
        user = b.user(home_city)
        lat, lon = jitter(ctx.rng, far.lat, far.lon, ctx.position_jitter_km)
        country = far.country
    else:  # no two real cities at the right distance (unusual thresholds): a point due east
        user = b.user()
        far_point = destination(user.home_lat, user.home_lon, 2 * t.impossible_travel_min_km, 90.0)
        lat, lon = (round(x, 4) for x in far_point)
        country = user.city.country
    home = ctx.home_access(user)
    remote = ctx.access_at(country, lat, lon)
    km = haversine_km(home.lat, home.lon, lat, lon)
    hours = km / (speed_factor * t.impossible_travel_max_kmh)
    dt = math.floor(hours * _HOUR_MS) if speed_factor > 1 else math.ceil(hours * _HOUR_MS)
    if deadline is not None and start + dt + 30_000 > deadline:
        return False
    label = b.label(
        RULE_IMPOSSIBLE_TRAVEL,
        speed_factor > 1,
        user,
        remote.ip,
        distance_km=f"{km:.1f}",
        speed_kmh=f"{km / (dt / _HOUR_MS):.1f}",
    )
    b.event(user, start, "LOGIN_SUCCESS", home, (label,), {"method": "password"}, b.session_id())
    session = b.session_id()
    b.event(user, start + dt, "LOGIN_SUCCESS", remote, (label,), {"method": "password"}, session)
    b.event(user, start + dt + 30_000, "PAGE_VIEW", remote, (label,), {"page": "/account"}, session)
    return True


def short_hop(b: _Builder, start: int) -> None:
    """Control: two logins one minute apart, but only half the minimum distance away (geo-IP noise)."""
    t = b.ctx.t
    user = b.user()
    home = b.ctx.home_access(user)
    lat, lon = (round(x, 4) for x in destination(home.lat, home.lon, 0.5 * t.impossible_travel_min_km, 45.0))
    mobile = replace(home, ip=b.ctx.attacker_ips.take(), lat=lat, lon=lon)
    km = haversine_km(home.lat, home.lon, lat, lon)
    label = b.label(
        RULE_IMPOSSIBLE_TRAVEL,
        False,
        user,
        mobile.ip,
        distance_km=f"{km:.1f}",
        speed_kmh=f"{km / (60_000 / _HOUR_MS):.1f}",
    )
    b.event(user, start, "LOGIN_SUCCESS", home, (label,), {"method": "password"}, b.session_id())
    b.event(user, start + 60_000, "LOGIN_SUCCESS", mobile, (label,), {"method": "password"}, b.session_id())


def credential_stuffing(b: _Builder, start: int, positive: bool) -> None:
    """One IP failing logins against K (positive) or K-1 (control) distinct users within half the window."""
    t = b.ctx.t
    n = t.credential_stuffing_min_users - (0 if positive else 1)
    attacker = b.ctx.attacker_access(b.ctx.city())
    label = b.label(RULE_CREDENTIAL_STUFFING, positive, None, attacker.ip, users=n)
    step = t.credential_stuffing_window_s * 1000 // 2 // max(1, n - 1)
    for i in range(n):
        b.event(
            b.user(), start + i * step, "LOGIN_FAILED", attacker, (label,), {"reason": "unknown_password"}
        )


def _takeover_late_ms(t: DetectionThresholds) -> int:
    """Success this long after the last failure is later than the takeover window from any failure."""
    return t.takeover_success_within_s * 1000 + max(60_000, t.takeover_success_within_s * 200)


# name -> builds the scenario into the builder; False when it cannot finish before the deadline
TEMPLATES: dict[str, Callable[[_Builder, int, int | None], bool | None]] = {
    "brute_force": lambda b, s, d: brute_force(b, s, True),
    "brute_force_control": lambda b, s, d: brute_force(b, s, False),
    "account_takeover": lambda b, s, d: account_takeover(
        b, s, b.ctx.t.brute_force_min_failures, b.ctx.t.takeover_success_within_s * 200
    ),
    "account_takeover_control_few_failures": lambda b, s, d: account_takeover(
        b, s, b.ctx.t.brute_force_min_failures - 1, b.ctx.t.takeover_success_within_s * 200
    ),
    "account_takeover_control_late_success": lambda b, s, d: account_takeover(
        b, s, b.ctx.t.brute_force_min_failures, _takeover_late_ms(b.ctx.t)
    ),
    "rapid_activity": lambda b, s, d: rapid_activity(b, s, True),
    "rapid_activity_control": lambda b, s, d: rapid_activity(b, s, False),
    "impossible_travel": lambda b, s, d: impossible_travel(b, s, 2.0, d),
    "impossible_travel_control_speed": lambda b, s, d: impossible_travel(b, s, 0.9, d),
    "impossible_travel_control_short_hop": lambda b, s, d: short_hop(b, s),
    "credential_stuffing": lambda b, s, d: credential_stuffing(b, s, True),
    "credential_stuffing_control": lambda b, s, d: credential_stuffing(b, s, False),
}


def build(
    ctx: ScenarioContext, scenario: str, scenario_id: str, start: int, deadline: int | None
) -> Plan | None:
    """The plan of one scenario starting at `start`, or None if it would not end before `deadline`."""
    b = _Builder(ctx, scenario_id, scenario)
    if TEMPLATES[scenario](b, start, deadline) is False:
        return None
    if deadline is not None and b.plan.end_ms >= deadline:
        return None
    return b.plan
