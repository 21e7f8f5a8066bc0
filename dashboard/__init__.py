"""The live dashboard (:8082): an HTTP API over what the platform already stores, server-sent events,
and one page that keeps itself up to date.

It reads, never writes: PostgreSQL through a read-only role, Kafka offsets and consumer groups, the Dagster
GraphQL API, the MLflow registry, the Flink and Spark REST APIs. The one action it offers, a bounded burst of
test traffic, is guarded by a token from the environment (DASHBOARD_TOKEN).

    app.py      the FastAPI application: lifespan, static files, error handlers
    routes.py   the API endpoints; models.py their request and response models (the OpenAPI schema)
    sources/    one reader per system; a system that is down raises `Unavailable`, so only its part says so
    feed.py     new alerts, pushed by PostgreSQL (LISTEN/NOTIFY) to every open stream
    sse.py      /api/stream: alerts as they are stored, and a metrics tick every few seconds
    traffic.py  POST /api/generate-test-data: simulator bursts and named attack scenarios
    static/     the page, its script and style, and the vendored chart library (uPlot, see vendor.py)
"""
