"""Users whose behaviour drifts into anomaly over a run: positives for the ML anomaly model.

A drifting user starts as an ordinary member of its persona and, from `start_ms` over `ramp_ms`,
moves towards one anomaly. Drift never crosses a CEP threshold (its sessions go through the same
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

DRIFT_KINDS: tuple[str, ...] = ("scraper", "night_shift", "globetrotter", "big_spender")
BASE_SESSION_GAP_MS = 15 * 60_000  # mean pause between sessions of a drifting user before drift


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

    def next_session_ms(self, after_ms: int, rng: random.Random) -> int:
        """When the next session starts: scrapers return ever sooner, night shifters move to 1-5 am."""
        r = self.level(after_ms)
        mean = BASE_SESSION_GAP_MS * (1 - 0.9 * r if self.kind == "scraper" else 1.0)
        ts = after_ms + int(rng.expovariate(1.0 / mean))
        if self.kind == "night_shift" and rng.random() < r:
            ts = _next_local_night(ts, self.user.city.utc_offset_h, rng)
        return ts


def _blend(a: float, b: float, r: float) -> float:
    return a + (b - a) * r


def _next_local_night(ts: int, utc_offset_h: float, rng: random.Random) -> int:
    """A random moment between 1 and 5 am local time, at or after `ts`."""
    hour_ms = 3_600_000
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
        kind = DRIFT_KINDS[i % len(DRIFT_KINDS)]
        user.drift = kind
        if kind == "scraper":
            user.devices = (*user.devices, new_bot_device())
        start = run_start_ms + int(horizon_ms * rng.uniform(0.1, 0.5))
        drifts.append(Drift(user, kind, start, max(60_000, math.ceil(horizon_ms * 0.3))))
    return drifts
