"""A property-based run of the dashboard's OpenAPI schema (schemathesis, the app in process) against real
PostgreSQL and Kafka with data in place: no 5xx, and every response matches the documented status codes,
content types and schemas. The one documented 5xx is GET /api/health's 503 (required components are down
in the dashboard's test world: no Spark, Dagster, MLflow or Flink in it), which must still match its schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.app import create_app

pytestmark = pytest.mark.integration

CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def dashboard_schema(dashboard_cfg, dashboard_seeded):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(dashboard_cfg))
    yield schema
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()


def test_no_server_error_and_every_response_matches_the_schema(dashboard_schema):
    """Every operation but the endless stream, 60 generated requests each (schemathesis' pytest plugin does
    not load with this pytest, so hypothesis drives each operation's strategy directly)."""
    operations = [result.ok() for result in dashboard_schema.get_all_operations()]
    tested = []
    for operation in operations:
        if operation.path == "/api/stream":
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call()
            if case.operation.path == "/api/health":
                assert response.status_code in (200, 503)
                case.validate_response(response, checks=CONFORMANCE)
            else:
                case.validate_response(response, checks=[not_a_server_error, *CONFORMANCE])

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) == 8, tested


def test_the_stream_is_documented_as_server_sent_events(dashboard_schema):
    operation = dashboard_schema["/api/stream"]["GET"]
    assert "text/event-stream" in operation.definition.raw["responses"]["200"]["content"]
