"""ML training benchmark: both models on 100,000 users, MLflow logging and registration included.

Starts its own PostgreSQL and MLflow server (free ports, temporary directory), draws synthetic
`user_features` rows with the structure of a simulated run (bench/ml_data.py: five personas, drifting
users, plus scenario identities the eligibility rule leaves out), then times each phase the scheduled
training does: train the segmentation (KMeans, metrics with silhouette on a 10,000-row sample), train
the anomaly model (peer groups, IsolationForest, threshold on the hold-out), log + register each in
MLflow (params, metrics, plots, skops model with signature), and the promotion step (load the
champion, held-out comparison, alias). Prints seconds per phase and in all; target: under 60 s.

    .venv/bin/python -m bench.ml_training [--users 100000] [--scenario-users 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.common import Services, append_result
from bench.ml_data import synthetic_features
from ml import anomaly, segmentation, tracking
from ml.promotion import compare_anomaly, compare_segmentation

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--scenario-users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    phases: dict[str, float] = {}

    def timed(name: str, fn: Callable):
        started = time.perf_counter()
        result = fn()
        phases[name] = time.perf_counter() - started
        print(f"{name:<34} {phases[name]:7.2f} s", flush=True)
        return result

    run = timed("synthetic features", lambda: synthetic_features(args.users, seed=args.seed,
                                                                 scenario_users=args.scenario_users))
    features = run.features
    with Services(mlflow=True) as svc:
        uri = svc.cfg.mlflow_tracking_uri
        tags = {"dagster.run_id": "bench", "dagster.asset_key": "bench", "dagster.partition_key": "2026-11-26"}
        seg = timed("train segmentation", lambda: segmentation.train_segmentation(features, seed=args.seed))
        det = timed("train anomaly", lambda: anomaly.train_anomaly(features, seed=args.seed))
        seg_logged = timed("log + register segmentation", lambda: tracking.log_segmentation(uri, seg, tags=tags))
        det_logged = timed("log + register anomaly", lambda: tracking.log_anomaly(uri, det, tags=tags))

        def promote() -> tuple[bool, bool]:
            seg_decision = compare_segmentation(seg, tracking.load_segmentation(uri), features)
            det_decision = compare_anomaly(det, tracking.load_anomaly(uri), features)
            return tracking.apply_promotion(uri, seg_decision), tracking.apply_promotion(uri, det_decision)

        promoted = timed("promotion (load champion, compare)", promote)
        # a second round with a champion in place: the comparison now loads and scores it too
        seg2 = timed("train segmentation (2nd)", lambda: segmentation.train_segmentation(features, seed=args.seed + 1))
        det2 = timed("train anomaly (2nd)", lambda: anomaly.train_anomaly(features, seed=args.seed + 1))
        timed("log + register both (2nd)", lambda: (tracking.log_segmentation(uri, seg2, tags=tags),
                                                    tracking.log_anomaly(uri, det2, tags=tags)))

        def promote_again() -> tuple[bool, bool]:
            return (tracking.apply_promotion(uri, compare_segmentation(seg2, tracking.load_segmentation(uri), features)),
                    tracking.apply_promotion(uri, compare_anomaly(det2, tracking.load_anomaly(uri), features)))

        promoted2 = timed("promotion vs champion (2nd)", promote_again)

    first_round = sum(phases[p] for p in ("train segmentation", "train anomaly", "log + register segmentation",
                                          "log + register anomaly", "promotion (load champion, compare)"))
    second_round = sum(phases[p] for p in ("train segmentation (2nd)", "train anomaly (2nd)",
                                           "log + register both (2nd)", "promotion vs champion (2nd)"))
    verdict = "met" if max(first_round, second_round) < TARGET_S else "NOT met"
    lines = [
        (f"users {args.users:,} + {args.scenario_users:,} scenario identities; eligible {seg.training.eligible:,}, "
         f"trained on {seg.training.train:,}, held out {seg.training.holdout:,}"),
        *(f"{name:<34} {seconds:7.2f} s" for name, seconds in phases.items()),
        (f"training + MLflow + promotion, first run (no champion yet): {first_round:.1f} s; "
         f"second run (champion in place): {second_round:.1f} s; target < {TARGET_S:.0f} s: {verdict}"),
        (f"registered {seg_logged.model_name} v{seg_logged.version}, {det_logged.model_name} v{det_logged.version}; "
         f"promoted first {promoted}, second {promoted2}"),
        (f"segments: {', '.join(seg.names.values())}; silhouette (train, 10k sample) "
         f"{seg.metrics['train.silhouette']:.3f}; anomaly threshold: {det.threshold.reason}"),
    ]
    print("\n".join(lines))
    append_result("ML training (bench/ml_training.py)",
                  f"-m bench.ml_training --users {args.users} --scenario-users {args.scenario_users} --seed {args.seed}",
                  lines)


if __name__ == "__main__":
    main()
