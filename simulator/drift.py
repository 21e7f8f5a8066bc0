"""Users whose behaviour drifts into anomaly over a run: positives for the ML anomaly model.

A drifting user starts as an ordinary member of its persona (sessions as often, and at the same local
hours, as the background users of that persona in this run) and, from `start_ms` over `ramp_ms`, moves
towards one anomaly. Drift never crosses a CEP threshold (its sessions go through the same
guards as all background traffic): it is meant to be caught by behaviour, not by a rule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from simulator.geo import CITIES
from simulator.personas import PERSONAS_BY_NAME, Persona
from simulator.population import Device, User

_HOUR_MS = 3_600_000
DRIFT_KINDS: tuple[str, ...] = ("scraper", "night_shift", "globetrotter", "big_spender")
# personas a drift kind would not change: night owls already live at 1-5 am (as bot-like scrapers already
# scrape, which is why they never drift at all); such a user gets the next kind of the rotation instead
UNCHANGED_BY: dict[str, frozenset[str]] = {"night_shift": frozenset({"night_owl"})}
# mean pause between sessions of a drifting user before any background session of its persona was seen
# (the engine passes the measured mean of its persona's background users once it has one)
BASE_SESSION_GAP_MS = 15 * 60_000


@dataclass
class Drift:
    user: User
    kind: str
    start_ms: int
    ramp_ms: int

    def level(self, ts: int) -> float:
        """0 before the drift starts, rising linearly to 1 at the end of the ramp."""
        return min(1.0, max(0.0, (ts - self.start_ms) / self.ramp_ms))

    def persona(self, ts: int) -> Persona:
        """The user's behaviour at `ts`: its own persona, blended towards the anomaly."""
        own, r = self.user.persona, self.level(ts)
        if r == 0.0 or self.kind in ("night_shift", "globetrotter"):
            return own
        if self.kind == "scraper":
            bot = PERSONAS_BY_NAME["bot_like_scraper"]
            return replace(
                own,
                body_events_mean=_blend(own.body_events_mean, bot.body_events_mean, r),
                body_events_max=round(_blend(own.body_events_max, bot.body_events_max, r)),
                gap_median_s=_blend(own.gap_median_s, bot.gap_median_s, r),
                gap_sigma=_blend(own.gap_sigma, bot.gap_sigma, r),
                event_mix=tuple(_blend(a, b, r) for a, b in zip(own.event_mix, bot.event_mix)),
                logout_prob=_blend(own.logout_prob, bot.logout_prob, r),
            )
        # big_spender: many more purchases, of up to fifty times the usual amount
        mix = list(own.event_mix)
        mix[2], mix[3] = mix[2] + 0.25 * r, mix[3] + 0.2 * r
        return replace(own, event_mix=tuple(mix), price_median=own.price_median * (1 + 49 * r))

    def device(self, ts: int, rng: random.Random) -> Device:
        """A scraping user switches to its headless client (its last device) as the drift takes hold."""
        devices = self.user.devices
        if self.kind != "scraper":
            return rng.choice(devices)
        return devices[-1] if rng.random() < self.level(ts) else rng.choice(devices[:-1])

    def destination(self, ts: int, rng: random.Random) -> tuple[str, float, float] | None:
        """A globetrotter logs in more and more often from cities in other countries."""
        if self.kind != "globetrotter" or rng.random() >= self.level(ts):
            return None
        abroad = [c for c in CITIES if c.country != self.user.city.country]
        city = rng.choice(abroad)
        return city.country, city.lat, city.lon

    def next_session_ms(self, after_ms: int, rng: random.Random, mean_gap_ms: float = BASE_SESSION_GAP_MS) -> int:
        """When the next session starts. Before the drift, like a background user of the persona: on average
        `mean_gap_ms` apart, more often at the local hours the persona is active (thinning by its hour
        weights). Then scrapers return ever sooner (down to a tenth of the gap) and night shifters move
        their sessions to 1-5 am local time."""
        r = self.level(after_ms)
        mean = mean_gap_ms * (1 - 0.9 * r if self.kind == "scraper" else 1.0)
        weights = self.user.persona.hour_weights
        top, average = max(weights), sum(weights) / len(weights)
        offset_ms = int(self.user.city.utc_offset_h * _HOUR_MS)
        ts = after_ms
        while True:  # a Poisson process at the busiest hour's rate, thinned to each hour's weight
            ts += max(1, int(rng.expovariate(top / average / mean)))
            if rng.random() * top < weights[((ts + offset_ms) // _HOUR_MS) % 24]:
                break
        if self.kind == "night_shift" and rng.random() < r:
            ts = _next_local_night(ts, self.user.city.utc_offset_h, rng)
        return ts


def _blend(a: float, b: float, r: float) -> float:
    return a + (b - a) * r


def _next_local_night(ts: int, utc_offset_h: float, rng: random.Random) -> int:
    """A random moment between 1 and 5 am local time, at or after `ts`."""
    hour_ms = _HOUR_MS
    offset_ms = int(utc_offset_h * hour_ms)
    local = ts + offset_ms
    night = local - local % (24 * hour_ms) + hour_ms + int(rng.random() * 4 * hour_ms)
    if night < local:
        night += 24 * hour_ms
    return night - offset_ms


def plan_drifts(
    rng: random.Random,
    candidates: list[User],
    count: int,
    run_start_ms: int,
    horizon_ms: int,
    new_bot_device: Callable[[], Device],
) -> list[Drift]:
    """Pick `count` drifting users; each starts drifting between 10% and 50% of the horizon and is fully
    drifted 30% of the horizon later. Scrapers get a headless device (with its own IP) to switch to."""
    chosen = rng.sample(candidates, min(count, len(candidates)))
    drifts = []
    for i, user in enumerate(chosen):
        rotation = DRIFT_KINDS[i % len(DRIFT_KINDS):] + DRIFT_KINDS[: i % len(DRIFT_KINDS)]
        kind = next(k for k in rotation if user.persona.name not in UNCHANGED_BY.get(k, ()))
        user.drift = kind
        if kind == "scraper":
            user.devices = (*user.devices, new_bot_device())
        start = run_start_ms + int(horizon_ms * rng.uniform(0.1, 0.5))
        drifts.append(Drift(user, kind, start, max(60_000, math.ceil(horizon_ms * 0.3))))
    return drifts
