"""Human-readable segment names, derived from each segment's centroid profile and nothing else.

A centroid in the model's scaled space is a profile in z units: how many standard deviations above or
below the whole population (after the registry transforms) the segment sits on each feature. Each
archetype below scores a segment as the mean of a few such z values (sign: + means "high", - "low");
the best (segment, archetype) pair above the archetype's minimum is named first, then the next, so
every archetype names at most one segment. A segment no archetype fits is named by the feature it
stands out on most ("high password resets", "low searches"). Same centroids, same names: the names
are stored with the model, and a retrained model names its segments again from its own centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Archetype:
    name: str
    signals: tuple[tuple[str, int], ...]  # (feature, +1 for high / -1 for low)
    min_score: float  # mean signed z a segment needs to carry this name


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("bot-like scrapers",
              (("events_per_session_7d", 1), ("peak_events_per_minute_7d", 1), ("median_gap_s_7d", -1)), 1.5),
    Archetype("night-time browsers", (("local_night_share_7d", 1), ("local_hour_cos_7d", 1)), 1.0),
    Archetype("big spenders",
              (("purchases_7d", 1), ("purchase_amount_7d", 1), ("share_purchase_7d", 1),
               ("share_add_to_cart_7d", 1)), 1.0),
    Archetype("occasional visitors", (("events_7d", -1), ("sessions_7d", -1), ("active_days_7d", -1)), 1.0),
    Archetype("travellers", (("distinct_countries_7d", 1), ("distinct_ips_7d", 1)), 1.5),
    Archetype("daytime browsers",
              (("local_night_share_7d", -1), ("share_page_view_7d", 1), ("share_purchase_7d", -1)), 0.2),
)


def _label(feature: str) -> str:
    """`share_page_view_7d` -> `share page view`: a feature name as words."""
    return feature.removesuffix("_7d").removesuffix("_1d").replace("_", " ")


def archetype_scores(profiles: pd.DataFrame, archetypes: tuple[Archetype, ...] = ARCHETYPES) -> pd.DataFrame:
    """Segments (rows of `profiles`, z units per feature column) x archetypes: mean signed z.
    An archetype whose features a profile lacks scores -inf (never chosen)."""
    scores = {}
    for a in archetypes:
        if all(f in profiles.columns for f, _ in a.signals):
            scores[a.name] = sum(profiles[f] * sign for f, sign in a.signals) / len(a.signals)
        else:
            scores[a.name] = pd.Series(float("-inf"), index=profiles.index)
    return pd.DataFrame(scores, index=profiles.index)


def segment_names(profiles: pd.DataFrame, archetypes: tuple[Archetype, ...] = ARCHETYPES) -> dict[int, str]:
    """A distinct name per segment id (the index of `profiles`), deterministic in the profiles."""
    scores = archetype_scores(profiles, archetypes)
    minimum = {a.name: a.min_score for a in archetypes}
    pairs = sorted(
        ((score, segment, name) for segment, row in scores.iterrows() for name, score in row.items()
         if score >= minimum[name]),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    names: dict[int, str] = {}
    for _, segment, name in pairs:
        if segment not in names and name not in names.values():
            names[int(segment)] = name
    for segment, row in profiles.sort_index().iterrows():
        if int(segment) in names:
            continue
        feature = row.abs().sort_values(ascending=False, kind="stable").index[0]
        base = f"{'high' if row[feature] >= 0 else 'low'} {_label(feature)}"
        name, n = base, 2
        while name in names.values():
            name, n = f"{base} ({n})", n + 1
        names[int(segment)] = name
    return dict(sorted(names.items()))
