"""The figures a training run logs to MLflow: what the segments look like, where the threshold cuts.

matplotlib comes with MLflow (one of its requirements). Figures are made with matplotlib's object API
(`Figure`, no pyplot): no global backend or figure registry is touched, nothing needs closing, and it
draws without a display.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def segment_profiles_figure(profiles: pd.DataFrame, names: dict[int, str], sizes: dict[int, int] | None = None
                            ) -> Figure:
    """Heatmap of the centroids in z units (features x segments), columns titled with the segment
    names and sizes: the picture the names were derived from."""
    fig = Figure(figsize=(2.2 + 1.6 * len(profiles), 0.32 * profiles.shape[1] + 1.6))
    ax = fig.subplots()
    values = profiles.T.to_numpy()
    limit = max(1.0, float(np.nanmax(np.abs(values))))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(profiles.shape[1]), profiles.columns, fontsize=7)
    labels = [f"{s}: {names.get(int(s), '?')}" + (f"\n{sizes[int(s)]:,} users" if sizes else "") for s in profiles.index]
    ax.set_xticks(range(len(profiles)), labels, rotation=30, ha="right", fontsize=8)
    fig.colorbar(image, ax=ax, label="centroid, z units (after transform and scaling)")
    ax.set_title("Segment profiles")
    fig.tight_layout()
    return fig


def score_histogram_figure(scores: np.ndarray, configured: float, chosen: float, title: str = "Anomaly scores"
                           ) -> Figure:
    """Histogram of the paper scores (log count), with the configured and the deployed threshold."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.hist(scores, bins=60, range=(min(0.3, float(np.min(scores))), 1.0), log=True, color="#4c72b0")
    ax.axvline(configured, color="#c44e52", linestyle="--", label=f"configured {configured:.3f}")
    ax.axvline(chosen, color="#dd8452", label=f"deployed {chosen:.3f}")
    ax.set_xlabel("s(x, n), original paper's score")
    ax.set_ylabel("users (log)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
