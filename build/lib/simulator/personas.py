"""Behaviour personas of the background population: when people are active and what a session holds.

The personas give the segmentation model distinct groups to find (shoppers, browsers, night owls,
scrapers, dormant accounts) and the anomaly model a normal to deviate from. Nothing here may make a
background user cross a security-rule threshold: the traffic generator enforces that structurally
(see simulator.traffic), so these numbers only shape what is realistic.
"""

from __future__ import annotations

from dataclasses import dataclass

# Body event types of a session, in the order of `Persona.event_mix`.
BODY_TYPES: tuple[str, ...] = ("PAGE_VIEW", "SEARCH", "ADD_TO_CART", "PURCHASE", "PROFILE_UPDATE")


@dataclass(frozen=True)
class Persona:
    name: str
    share: float  # fraction of the population
    activity: float  # relative session starts per user per hour, at an hour of weight 1
    hour_weights: tuple[float, ...]  # 24 values, by local hour of the user's home
    body_events_mean: float  # mean number of events between login and logout (gamma, shape 2)
    body_events_max: int
    gap_median_s: float  # median seconds between two events of a session (log-normal)
    gap_sigma: float
    event_mix: tuple[float, ...]  # weights of BODY_TYPES
    price_median: float  # median item price, in the session's currency
    typo_prob: float  # chance a session starts with a failed login (a mistyped password)
    logout_prob: float  # sessions that end without LOGOUT simply time out
    devices: tuple[str, ...]  # device kinds the user owns, see simulator.population.USER_AGENTS
    cooldown_s: float  # minimum pause between two sessions of one user

    def __post_init__(self) -> None:
        if len(self.hour_weights) != 24 or len(self.event_mix) != len(BODY_TYPES):
            raise ValueError(f"persona {self.name}: 24 hour weights and {len(BODY_TYPES)} mix weights needed")


_DAYTIME = (
    0.15,
    0.08,
    0.05,
    0.04,
    0.04,
    0.08,
    0.25,
    0.5,
    0.7,
    0.8,
    0.85,
    0.9,
    1.0,
    0.95,
    0.8,
    0.75,
    0.75,
    0.85,
    0.95,
    1.0,
    1.0,
    0.9,
    0.6,
    0.3,
)
_EVENINGS = (
    0.2,
    0.1,
    0.05,
    0.03,
    0.03,
    0.05,
    0.15,
    0.3,
    0.4,
    0.4,
    0.45,
    0.6,
    0.9,
    0.7,
    0.45,
    0.45,
    0.5,
    0.7,
    0.9,
    1.0,
    1.0,
    1.0,
    0.8,
    0.45,
)
_NIGHTS = (
    1.0,
    1.0,
    0.9,
    0.75,
    0.5,
    0.25,
    0.1,
    0.05,
    0.05,
    0.05,
    0.08,
    0.1,
    0.15,
    0.15,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.65,
    0.8,
    0.95,
    1.0,
)
_ROUND_THE_CLOCK = (1.0,) * 24

PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="casual_browser",
        share=0.50,
        activity=1.0,
        hour_weights=_DAYTIME,
        body_events_mean=7,
        body_events_max=40,
        gap_median_s=8,
        gap_sigma=0.9,
        event_mix=(0.72, 0.2, 0.05, 0.015, 0.015),
        price_median=25,
        typo_prob=0.04,
        logout_prob=0.55,
        devices=("desktop", "mobile"),
        cooldown_s=60,
    ),
    Persona(
        name="power_shopper",
        share=0.15,
        activity=2.5,
        hour_weights=_EVENINGS,
        body_events_mean=22,
        body_events_max=90,
        gap_median_s=6,
        gap_sigma=0.8,
        event_mix=(0.5, 0.2, 0.18, 0.1, 0.02),
        price_median=45,
        typo_prob=0.03,
        logout_prob=0.75,
        devices=("desktop", "mobile", "tablet"),
        cooldown_s=60,
    ),
    Persona(
        name="night_owl",
        share=0.15,
        activity=1.5,
        hour_weights=_NIGHTS,
        body_events_mean=11,
        body_events_max=60,
        gap_median_s=8,
        gap_sigma=1.0,
        event_mix=(0.68, 0.2, 0.07, 0.03, 0.02),
        price_median=30,
        typo_prob=0.05,
        logout_prob=0.4,
        devices=("mobile",),
        cooldown_s=60,
    ),
    Persona(
        name="bot_like_scraper",
        share=0.03,
        activity=3.0,
        hour_weights=_ROUND_THE_CLOCK,
        body_events_mean=120,
        body_events_max=400,
        gap_median_s=0.9,
        gap_sigma=0.25,
        event_mix=(0.8, 0.2, 0.0, 0.0, 0.0),
        price_median=0,
        typo_prob=0.0,
        logout_prob=0.05,
        devices=("bot",),
        cooldown_s=30,
    ),
    Persona(
        name="dormant",
        share=0.17,
        activity=0.03,
        hour_weights=_DAYTIME,
        body_events_mean=3,
        body_events_max=15,
        gap_median_s=10,
        gap_sigma=0.9,
        event_mix=(0.75, 0.15, 0.03, 0.01, 0.06),
        price_median=20,
        typo_prob=0.25,
        logout_prob=0.5,
        devices=("desktop",),
        cooldown_s=600,
    ),
)
PERSONAS_BY_NAME: dict[str, Persona] = {p.name: p for p in PERSONAS}
