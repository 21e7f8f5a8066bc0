"""JSON over HTTP from the platform's web services (Spark UI, Dagster GraphQL, MLflow, Flink REST): short
timeouts, and `Unavailable` naming the service when it does not answer or answers with an error."""

from __future__ import annotations

from typing import Any

import requests

from dashboard.sources import Unavailable, first_line

TIMEOUT_S = 2.0
_session = requests.Session()


def get_json(service: str, url: str, params: dict | None = None, timeout_s: float = TIMEOUT_S,
             missing_ok: bool = False) -> Any:
    """The decoded body; None for a 404 when `missing_ok`."""
    try:
        response = _session.get(url, params=params, timeout=timeout_s)
    except requests.RequestException as exc:
        raise Unavailable(f"{service} does not answer at {url.split('?')[0]} ({type(exc).__name__})") from None
    return _decode(service, response, missing_ok)


def post_json(service: str, url: str, body: dict, timeout_s: float = TIMEOUT_S) -> Any:
    try:
        response = _session.post(url, json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        raise Unavailable(f"{service} does not answer at {url} ({type(exc).__name__})") from None
    return _decode(service, response, False)


def _decode(service: str, response: requests.Response, missing_ok: bool) -> Any:
    if response.status_code == 404 and missing_ok:
        return None
    if not response.ok:
        raise Unavailable(f"{service} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise Unavailable(f"{service} answered something that is not JSON: {first_line(exc)}") from None
