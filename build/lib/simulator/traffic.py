"""Background sessions of ordinary users, kept below every security-rule threshold by construction.

Randomness alone cannot promise that no background user ever crosses a threshold; these guards do,
for any seed, with a margin of two so that even a duplicated event (the malformed-message injector
re-sends some background events verbatim) cannot tip a window over:

- rapid activity: consecutive events of a user are at least `min_gap_ms` apart, so any window of
  `rapid_activity_window_s` holds at most half of `rapid_activity_max_events`;
- brute force: at most half of (`brute_force_min_failures` - 1) failed logins per user within twice
  the brute-force window, and so no account takeover either;
- impossible travel: a session whose place would be farther than half the minimum distance from the
  user's previous event at more than half the maximum speed takes place at the previous place;
- credential stuffing: every device of a user has its own IP (simulator.population), so an IP's
  failed logins all concern one user.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from itertools import accumulate

from contract.detection import DetectionThresholds
from simulator.encoding import encode_event, place_fragment, uuid4_from
from simulator.geo import haversine_km, jitter
from simulator.personas import BODY_TYPES, Persona
from simulator.population import Device, User

SESSION_JITTER_KM = 2.0  # geo-IP noise around the place of a session
KIND_BACKGROUND = "background"

_PAGES = (
    "/",
    "/deals",
    "/category/shoes",
    "/category/electronics",
    "/category/books",
    "/category/home",
    "/category/toys",
    "/help",
    "/account",
    "/cart",
    "/wishlist",
    "/category/garden",
)
_QUERIES = (
    "running shoes",
    "usb-c cable",
    "coffee beans",
    "lego",
    "headphones",
    "winter jacket",
    "yoga mat",
    "phone case",
    "desk lamp",
    "board games",
    "backpack",
    "sunglasses",
    "air fryer",
    "novel",
)
_PROFILE_FIELDS = ("address", "phone", "newsletter", "avatar", "language")
_CURRENCIES = {
    "US": "USD",
    "CA": "CAD",
    "MX": "MXN",
    "BR": "BRL",
    "AR": "ARS",
    "GB": "GBP",
    "IN": "INR",
    "JP": "JPY",
    "AU": "AUD",
    "NZ": "NZD",
    "CH": "CHF",
    "SE": "SEK",
    "PL": "PLN",
    "KR": "KRW",
    "CN": "CNY",
    "HK": "HKD",
    "SG": "SGD",
    "TR": "TRY",
    "ZA": "ZAR",
}


# Standard normal draws looked up by a uniform index: a third of the cost of `random.gauss` per event,
# and as reproducible, since the table is fixed and the index comes from the run's seeded rng.
_NORMALS_SIZE = 4096


def _standard_normals(n: int) -> tuple[float, ...]:
    rng = random.Random(0)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(n))


_NORMALS = _standard_normals(_NORMALS_SIZE)


def currency_of(country: str) -> str:
    return _CURRENCIES.get(country, "EUR")


class Guards:
    """Per-user limits derived from the thresholds; see the module docstring for the reasoning."""

    def __init__(self, thresholds: DetectionThresholds):
        allowed_events = max(1, thresholds.rapid_activity_max_events // 2)
        self.min_gap_ms = thresholds.rapid_activity_window_s * 1000 // allowed_events + 1
        self.max_failures = (thresholds.brute_force_min_failures - 1) // 2
        self.failure_window_ms = 2 * thresholds.brute_force_window_s * 1000
        self.travel_km = thresholds.impossible_travel_min_km / 2
        self.travel_kmh = thresholds.impossible_travel_max_kmh / 2

    def failures_allowed(self, user: User, ts: int) -> int:
        """How many failed logins a session starting at `ts` may still have (its own come later)."""
        user.failures = [t for t in user.failures if t > ts - self.failure_window_ms]
        return self.max_failures - len(user.failures)

    def place(self, user: User, ts: int, country: str, lat: float, lon: float) -> tuple[str, float, float]:
        """The place of a session starting at `ts`: the wished one, unless reaching it would look like
        impossible travel from the user's previous event, in which case the previous place."""
        if user.last_ts is None:
            return country, lat, lon
        km = haversine_km(user.last_lat, user.last_lon, lat, lon)
        hours = max(ts - user.last_ts, 1) / 3_600_000
        if km > self.travel_km and km / hours > self.travel_kmh:
            return user.last_country, user.last_lat, user.last_lon
        return country, lat, lon


class SessionWriter:
    """Turns one session of one user into encoded events, updating the user's guard state."""

    def __init__(self, rng: random.Random, guards: Guards):
        self.rng = rng
        self.guards = guards
        self.planned = 0  # events of all sessions so far, warm-up included

    def session(
        self,
        user: User,
        start_ms: int,
        persona: Persona,
        device: Device | None = None,
        destination: tuple[str, float, float] | None = None,
        emit_from_ms: int = 0,
    ) -> list[tuple[int, str, bytes]]:
        """Events (occurred_at, event_id, payload) of a session of `user` starting at `start_ms`.

        `persona` may differ from the user's own (a drifted profile); `destination` is a wished
        (country, lat, lon) other than home, subject to the travel guard. Events before
        `emit_from_ms` shape the user's state but are neither encoded nor returned (warm-up).
        """
        rng, guards = self.rng, self.guards
        random_ = rng.random
        device = device or rng.choice(user.devices)
        country, lat, lon = destination or (user.city.country, user.home_lat, user.home_lon)
        lat, lon = jitter(rng, lat, lon, SESSION_JITTER_KM)
        ts = max(start_ms, user.next_free_ms)
        country, lat, lon = guards.place(user, ts, country, lat, lon)

        steps: list[tuple[str, str]] = []  # (event type, properties JSON)
        if user.registers:
            user.registers = False
            steps.append(
                ("USER_REGISTERED", f'{{"channel":"{("web", "ios", "android")[int(random_() * 3)]}"}}')
            )
        failures, allowed = 0, guards.failures_allowed(user, ts)
        while failures < allowed and random_() < persona.typo_prob:
            steps.append(("LOGIN_FAILED", '{"reason":"bad_password"}'))
            failures += 1
        if failures >= 2:
            steps.append(("PASSWORD_RESET", '{"method":"email"}'))
        steps.append(("LOGIN_SUCCESS", '{"method":"password"}' if random_() < 0.8 else '{"method":"sso"}'))
        self._body(persona, currency_of(country), steps)
        if random_() < persona.logout_prob:
            steps.append(("LOGOUT", "{}"))

        self.planned += len(steps)
        min_gap, median, sigma = guards.min_gap_ms, persona.gap_median_s * 1000, persona.gap_sigma
        normals, exp = _NORMALS, math.exp
        fragment = (
            place_fragment(f"s-{rng.getrandbits(64):016x}", device.ip, country, lat, lon)
            + device.json_fragment
        )
        uid = user.user_id
        out: list[tuple[int, str, bytes]] = []
        first = True
        for event_type, properties in steps:
            if first:
                first = False
            else:
                gap = int(median * exp(sigma * normals[int(random_() * _NORMALS_SIZE)]))
                ts += max(min_gap, gap)
            if event_type == "LOGIN_FAILED":
                user.failures.append(ts)
            if ts >= emit_from_ms:
                event_id = uuid4_from(rng)
                out.append((ts, event_id, encode_event(event_id, event_type, uid, ts, fragment, properties)))
        user.last_ts, user.last_country, user.last_lat, user.last_lon = ts, country, lat, lon
        user.next_free_ms = ts + max(min_gap, int(persona.cooldown_s * 1000))
        return out

    def _body(self, persona: Persona, currency: str, steps: list[tuple[str, str]]) -> None:
        """Append the events between login and logout: views, searches, carts and purchases."""
        random_ = self.rng.random
        cumulative = list(accumulate(persona.event_mix))
        total = cumulative[-1]
        count = min(int(self.rng.gammavariate(2.0, persona.body_events_mean / 2)), persona.body_events_max)
        price_median = persona.price_median
        cart, items = 0.0, 0
        for _ in range(count):
            event_type = BODY_TYPES[bisect(cumulative, random_() * total)]
            if event_type == "PAGE_VIEW":
                if random_() < 0.4:
                    page = _PAGES[int(random_() * len(_PAGES))]
                else:
                    page = f"/product/{int(random_() * 50_000) + 1}"
                steps.append((event_type, f'{{"page":"{page}"}}'))
            elif event_type == "SEARCH":
                query = _QUERIES[int(random_() * len(_QUERIES))]
                steps.append((event_type, f'{{"query":"{query}","results":"{int(random_() * 500)}"}}'))
            elif event_type == "ADD_TO_CART":
                price = round(price_median * math.exp(0.8 * _NORMALS[int(random_() * _NORMALS_SIZE)]), 2)
                cart += price
                items += 1
                product = int(random_() * 50_000) + 1
                steps.append(
                    (event_type, f'{{"product_id":"p-{product}","price":"{price:.2f}","quantity":"1"}}')
                )
            elif event_type == "PURCHASE":
                if not items:  # "buy now" of a single item
                    cart = round(price_median * math.exp(0.8 * _NORMALS[int(random_() * _NORMALS_SIZE)]), 2)
                    items = 1
                order = f"o-{self.rng.getrandbits(40):010x}"
                purchase = (
                    f'{{"order_id":"{order}","amount":"{cart:.2f}",'
                    f'"currency":"{currency}","items":"{items}"}}'
                )
                steps.append((event_type, purchase))
                cart, items = 0.0, 0
            else:
                field = _PROFILE_FIELDS[int(random_() * len(_PROFILE_FIELDS))]
                steps.append((event_type, f'{{"field":"{field}"}}'))
