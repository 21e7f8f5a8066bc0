"""Flink CEP sidecar: security rules as Flink SQL MATCH_RECOGNIZE over `user-events` (see README.md)."""
