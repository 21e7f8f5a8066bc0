"""Synthetic `user_features` rows with the structure of a simulated run, for the ML benchmarks and the
unit tests of ml/: the five simulator personas (their medians taken from the features of a simulated
7-day run, 5,000 users, seed 11), users whose behaviour drifts (four kinds, as simulator/drift.py),
and scenario identities with a handful of events that the eligibility rule must leave out.

Every registry feature is a column (one row per user, no nulls, registry dtypes), so the frames go
through the same code as the table. The draws are vectorised: 100,000 users take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ml.features import FEATURES

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class PersonaShape:
    share: float
    sessions: float  # mean sessions in 7 days
    events_per_session: float  # median
    hour: float  # typical local hour of activity
    concentration: float  # mean resultant length of the event hours (0 = round the clock)
    night_share: float  # share of events 0-6 local
    gap_s: float  # median seconds between events
    mix: tuple[float, ...]  # PAGE_VIEW, SEARCH, ADD_TO_CART, PURCHASE, LOGIN_FAILED, PROFILE_UPDATE, LOGOUT, other
    price: float  # median purchase amount
    typo: float  # chance a session starts with a failed login
    devices: float  # mean distinct devices


PERSONAS: dict[str, PersonaShape] = {
    "casual_browser": PersonaShape(0.50, 39, 8.1, 15.0, 0.36, 0.03, 9.2,
                                   (0.58, 0.16, 0.04, 0.012, 0.004, 0.011, 0.068, 0.125), 30, 0.04, 1.8),
    "power_shopper": PersonaShape(0.15, 76, 23.0, 17.0, 0.36, 0.04, 6.2,
                                  (0.46, 0.185, 0.166, 0.092, 0.001, 0.018, 0.032, 0.046), 100, 0.03, 2.4),
    "night_owl": PersonaShape(0.15, 41, 12.0, 23.5, 0.54, 0.42, 8.8,
                              (0.60, 0.175, 0.061, 0.025, 0.004, 0.017, 0.033, 0.085), 45, 0.05, 1.0),
    "bot_like_scraper": PersonaShape(0.03, 193, 119.0, 12.0, 0.02, 0.25, 0.9,
                                     (0.79, 0.20, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01), 0, 0.0, 1.0),
    "dormant": PersonaShape(0.17, 3, 4.5, 13.0, 0.5, 0.0, 12.6,
                            (0.42, 0.083, 0.02, 0.01, 0.05, 0.06, 0.111, 0.246), 20, 0.25, 1.0),
}
DRIFT_KINDS = ("scraper", "night_shift", "globetrotter", "big_spender")


@dataclass
class SyntheticRun:
    features: pd.DataFrame  # user_features rows of one feature day
    personas: pd.Series  # persona by user_id (scenario identities excluded)
    drifting: set[str]  # user ids whose behaviour drifts


def synthetic_features(
    users: int,
    seed: int = 0,
    feature_date: date = date(2026, 11, 26),
    drift_share: float = 0.005,
    scenario_users: int = 0,
    personas: dict[str, PersonaShape] = PERSONAS,
) -> SyntheticRun:
    """`users` background users (personas by their shares, `drift_share` of them drifting) and
    `scenario_users` one-off identities, as one day of the `user_features` table."""
    rng = np.random.default_rng(seed)
    names = list(personas)
    shares = np.array([personas[p].share for p in names])
    persona_idx = rng.choice(len(names), size=users, p=shares / shares.sum())
    P = {field: np.array([getattr(personas[p], field) for p in names])[persona_idx]
         for field in ("sessions", "events_per_session", "hour", "concentration", "night_share", "gap_s", "price",
                       "typo", "devices")}
    mix = np.array([personas[p].mix for p in names])[persona_idx]
    persona = np.array(names)[persona_idx]
    drift = np.full(users, "", dtype=object)
    n_drift = round(drift_share * users) if drift_share > 0 else 0
    candidates = np.flatnonzero(persona != "bot_like_scraper")
    drifting_idx = rng.choice(candidates, size=min(n_drift, len(candidates)), replace=False)
    drift[drifting_idx] = rng.choice(DRIFT_KINDS, size=len(drifting_idx))

    eps = P["events_per_session"] * rng.lognormal(0, 0.25, users)
    gap = P["gap_s"] * rng.lognormal(0, 0.2, users)
    sessions = np.maximum(rng.poisson(P["sessions"]), 1).astype(float)
    night = np.clip(P["night_share"] + rng.normal(0, 0.03, users), 0, 1)
    hour = P["hour"] + rng.normal(0, 1.0, users)
    concentration = np.clip(P["concentration"] * rng.lognormal(0, 0.1, users), 0.005, 0.98)
    countries = 1 + (rng.random(users) < 0.01)
    devices = np.maximum(1, rng.poisson(P["devices"] - 1) + 1)
    ips = devices + (rng.random(users) < 0.1)
    price = P["price"] * rng.lognormal(0, 0.3, users)
    mix = mix * rng.lognormal(0, 0.1, mix.shape)

    # drift, as simulator/drift.py: scrapers go bot-like, night shifters move to 1-5 am, globetrotters log in
    # from other countries, big spenders buy more and dearer; all come back more often
    for kind in DRIFT_KINDS:
        d = drift == kind
        sessions[d] *= 1.5
        if kind == "scraper":
            eps[d] *= 6
            gap[d] /= 6
            mix[d] = mix[d] * [1.3, 1.3, 0.3, 0.3, 0.3, 0.3, 0.2, 1]
        elif kind == "night_shift":
            night[d] = np.clip(night[d] + 0.45, 0, 1)
            hour[d], concentration[d] = 3.0, np.maximum(concentration[d], 0.55)
        elif kind == "globetrotter":
            countries[d] += rng.integers(2, 5, d.sum())
            ips[d] += rng.integers(3, 8, d.sum())
        else:
            mix[d] = mix[d] + [0, 0, 0.2, 0.15, 0, 0, 0, 0]
            price[d] *= 15
    mix = mix / mix.sum(axis=1, keepdims=True)

    dormant = persona == "dormant"
    active_days = np.where(dormant, np.minimum(sessions, 1 + rng.binomial(6, 0.3, users)), 7).astype(int)
    events = np.maximum(np.round(sessions * eps), 1)
    counts = rng.multinomial(events.astype(int), mix) if users else np.zeros((0, 8), int)
    day_share = np.where(dormant, 0.15, 1 / 7)
    sessions_1d = rng.binomial(sessions.astype(int), day_share)
    events_1d = rng.binomial(events.astype(int), day_share)
    lon = rng.uniform(-120, 140, users)
    local_angle = TWO_PI * hour / 24
    utc_angle = local_angle - np.radians(lon)
    failed = counts[:, 4]
    purchases = counts[:, 3]
    purchases_1d = rng.binomial(purchases, day_share)
    amount = purchases * price
    peak = np.maximum(1, np.minimum(eps, 60 / gap * rng.uniform(0.6, 1.0, users))).round()

    columns = {
        "events_7d": events,
        "events_1d": events_1d,
        "sessions_7d": sessions,
        "sessions_1d": sessions_1d,
        "active_days_7d": active_days,
        "events_per_session_7d": events / sessions,
        "hour_mean_7d": np.mod(np.degrees(utc_angle) / 15, 24),
        "hour_spread_7d": np.sqrt(-2 * np.log(concentration)) * 12 / np.pi,
        "hour_sin_7d": concentration * np.sin(utc_angle),
        "hour_cos_7d": concentration * np.cos(utc_angle),
        "night_share_7d": rng.beta(1, 4, users),
        "local_hour_sin_7d": concentration * np.sin(local_angle),
        "local_hour_cos_7d": concentration * np.cos(local_angle),
        "local_night_share_7d": night,
        "median_gap_s_7d": gap,
        "peak_events_per_minute_7d": peak,
        "peak_events_per_minute_1d": np.where(events_1d > 0, np.maximum(1, np.round(peak * 0.9)), 0),
        "failed_login_ratio_7d": failed / np.maximum(failed + sessions, 1),
        "failed_logins_1d": rng.binomial(failed, day_share),
        "password_resets_7d": rng.poisson(0.02, users),
        "distinct_ips_7d": ips,
        "distinct_ips_1d": np.minimum(ips, np.where(events_1d > 0, 1 + rng.binomial(np.maximum(ips - 1, 0), 0.3), 0)),
        "distinct_countries_7d": countries,
        "distinct_devices_7d": devices,
        "page_views_7d": counts[:, 0],
        "searches_7d": counts[:, 1],
        "cart_adds_7d": counts[:, 2],
        "purchases_7d": purchases,
        "purchases_1d": purchases_1d,
        "purchase_amount_7d": amount,
        "purchase_amount_1d": np.where(purchases > 0, amount * purchases_1d / np.maximum(purchases, 1), 0.0),
        "cart_to_purchase_7d": purchases / np.maximum(counts[:, 2], 1),
        "share_page_view_7d": counts[:, 0] / events,
        "share_search_7d": counts[:, 1] / events,
        "share_add_to_cart_7d": counts[:, 2] / events,
        "share_purchase_7d": purchases / events,
        "share_login_failed_7d": failed / events,
        "share_profile_update_7d": counts[:, 5] / events,
        "share_logout_7d": counts[:, 6] / events,
    }
    user_ids = np.array([f"u-{i:06d}" for i in range(users)])
    frame = pd.DataFrame(columns)
    frame.insert(0, "user_id", user_ids)
    if scenario_users:
        frame = pd.concat([frame, _scenario_identities(rng, scenario_users, users)], ignore_index=True)
    frame.insert(0, "feature_date", feature_date)
    frame = frame[["feature_date", "user_id", *(f.name for f in FEATURES)]]
    for f in FEATURES:
        frame[f.name] = frame[f.name].astype("int64" if f.dtype == "long" else "float64")
    return SyntheticRun(frame, pd.Series(persona, index=user_ids, name="persona"),
                        set(user_ids[drift != ""].tolist()))


def _scenario_identities(rng: np.random.Generator, n: int, first_index: int) -> pd.DataFrame:
    """Identities made for one attack scenario: 1-12 events (mostly failed logins) in at most one
    session, on one day."""
    events = rng.integers(1, 13, n)
    failed = rng.binomial(events, 0.8)
    sessions = (rng.random(n) < 0.4).astype(int)
    row = {f.name: np.zeros(n) for f in FEATURES}
    row.update({
        "events_7d": events, "events_1d": events, "sessions_7d": sessions, "sessions_1d": sessions,
        "active_days_7d": np.ones(n), "events_per_session_7d": events / np.maximum(sessions, 1),
        "median_gap_s_7d": rng.uniform(0.5, 5, n), "peak_events_per_minute_7d": events,
        "peak_events_per_minute_1d": events, "failed_login_ratio_7d": failed / np.maximum(failed + sessions, 1),
        "failed_logins_1d": failed, "distinct_ips_7d": np.ones(n), "distinct_ips_1d": np.ones(n),
        "distinct_countries_7d": np.ones(n), "distinct_devices_7d": np.ones(n),
        "share_login_failed_7d": failed / events, "share_page_view_7d": (events - failed) / events,
    })
    frame = pd.DataFrame(row)
    frame.insert(0, "user_id", [f"s-{first_index + i:06d}" for i in range(n)])
    return frame
