"""Plain-Python machine learning of the lakehouse: feature matrices and eligibility, KMeans segments,
IsolationForest anomalies, promotion rules, scoring rows and messages, MLflow tracking. No Dagster
imports here: the assets call these functions. See ml/README.md."""
