"""Dagster through its GraphQL API (the webserver's /graphql): the code location, daemon health and the
last landing runs."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.sources import Unavailable
from dashboard.sources.http import post_json

LANDING_JOB = "bronze_landing_job"  # analytics_defs.constants.BRONZE_LANDING_JOB, spelled here to keep Dagster out

_DAEMONS = """{ instance { daemonHealth { allDaemonStatuses {
  daemonType required healthy lastHeartbeatErrors { message } } } } }"""

_LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

_RUNS = """query LandingRuns($job: String!, $limit: Int!) {
  runsOrError(filter: {pipelineName: $job}, limit: $limit) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  } }"""


def _query(webserver_url: str, query: str, variables: dict | None = None) -> dict:
    body = post_json("Dagster", f"{webserver_url}/graphql", {"query": query, "variables": variables or {}})
    if body.get("errors"):
        raise Unavailable(f"Dagster GraphQL: {body['errors'][0].get('message', 'error')[:200]}")
    return body["data"]


def daemon_statuses(webserver_url: str) -> list[dict]:
    """[{daemonType, required, healthy, lastHeartbeatErrors}] as the instance reports them."""
    return _query(webserver_url, _DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]


def code_locations(webserver_url: str) -> list[dict]:
    """[{name, loaded, error}] of the workspace's code locations (the code server, as the webserver sees it)."""
    workspace = _query(webserver_url, _LOCATIONS)["workspaceOrError"]
    if workspace["__typename"] != "Workspace":
        raise Unavailable(f"Dagster workspace: {workspace['__typename']}")
    return [
        {"name": e["name"], "loaded": (e.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation",
         "error": (e.get("locationOrLoadError") or {}).get("message") or (None if e["loadStatus"] == "LOADED" else e["loadStatus"])}
        for e in workspace["locationEntries"]
    ]


def landing_runs(webserver_url: str, limit: int = 10) -> list[dict]:
    result = _query(webserver_url, _RUNS, {"job": LANDING_JOB, "limit": limit})["runsOrError"]
    if result["__typename"] != "Runs":
        raise Unavailable(f"Dagster: {result.get('message', result['__typename'])[:200]}")
    runs = []
    for run in result["results"]:
        tags = {t["key"]: t["value"] for t in run.get("tags") or []}
        start, end = run.get("startTime"), run.get("endTime")
        runs.append({
            "run_id": run["runId"], "status": run["status"], "partition": tags.get("dagster/partition"),
            "start_time": _ts(start), "end_time": _ts(end),
            "seconds": round(end - start, 2) if start and end else None,
        })
    return runs


def _ts(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s else None
