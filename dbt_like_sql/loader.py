"""SQL models as Dagster assets: each `models/<name>.sql` becomes the asset `<name>`, its dependencies
taken from the `{{ ref('model') }}` and `{{ source('silver', 'user_events') }}` calls in its text.

A model is a Jinja2 template of one Spark SQL SELECT. In it:

    {{ config(partitioned=true, publish={'table': 'daily_kpis', 'key': ['event_date']}) }}
    {{ ref('daily_activity') }}           another model (lineage: model -> model)
    {{ source('silver', 'user_events') }}  a table the lakehouse builds (lineage: asset -> model)
    {{ partition_date }}                  DATE 'YYYY-MM-DD' of the day being built (partitioned models)

A partitioned model is daily, like silver, and writes its day with `replaceWhere` on `event_date`; an
unpartitioned one replaces its whole table. `publish` upserts the day's rows into a PostgreSQL table
(created by a migration) on its key. Every model lands in Delta under `<warehouse>/models/<name>`.

Loading checks what can be checked without Spark and fails naming the file (and line): a reference to a
model that does not exist, a source that is not declared, a cycle, a template that does not render.
SQL that Spark rejects fails the run with the file name and Spark's line and position.

Why not dbt: dbt-spark talks to a Thrift server or a session cluster, not to Spark Connect; the models
here need daily partitions replaced in Delta and a publish step to PostgreSQL, and dagster-dbt with
dbt-core would add two large dependency trees for what is a template render and a `spark.sql` call.
"""


import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import dagster as dg
import jinja2

from analytics_defs.automation import refresh_on_upstream_update
from analytics_defs.constants import (
    SILVER_USER_EVENTS,
    SILVER_USER_EVENTS_TABLE,
    SQL_MODELS_ROOT,
    USER_FEATURES,
    USER_FEATURES_TABLE,
)
from analytics_defs.partitions import day_of, event_days
from assets.delta import day_predicate, read_table, replace_where
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource

MODELS_DIR = Path(__file__).resolve().parent / "models"
PARTITION_COLUMN = "event_date"
# (schema, name) -> the asset that builds it and its table under the warehouse root
SOURCES: dict[tuple[str, str], tuple[dg.AssetKey, str]] = {
    ("silver", "user_events"): (SILVER_USER_EVENTS, SILVER_USER_EVENTS_TABLE),
    ("features", "user_features"): (USER_FEATURES, USER_FEATURES_TABLE),
}


class ModelError(ValueError):
    """A SQL model is wrong; the message starts with its file (and line)."""


@dataclass(frozen=True)
class Publish:
    table: str
    key: tuple[str, ...]


@dataclass
class SqlModel:
    name: str
    path: Path
    text: str
    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    partitioned: bool = False
    publish: Publish | None = None
    description: str = ""

    @property
    def table(self) -> str:
        return f"{SQL_MODELS_ROOT}/{self.name}"

    def line_of(self, needle: str) -> int | None:
        for number, line in enumerate(self.text.splitlines(), 1):
            if needle in line:
                return number
        return None

    def where(self, needle: str | None = None) -> str:
        line = self.line_of(needle) if needle else None
        return f"{self.path}:{line}" if line else str(self.path)


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _render(model: SqlModel, ref, source, partition_date: str) -> str:
    def config(**kwargs) -> str:
        return ""

    try:
        return _ENV.from_string(model.text).render(ref=ref, source=source, config=config, partition_date=partition_date)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise ModelError(f"{model.path}{f':{line}' if line else ''}: the template does not render: {exc}") from None


def _discover(path: Path) -> SqlModel:
    """Read one model: its refs, sources and config, from a render that records them."""
    model = SqlModel(path.stem, path, path.read_text())
    settings: dict = {}

    def ref(name: str) -> str:
        model.refs.append(name)
        return name

    def source(schema: str, name: str) -> str:
        model.sources.append((schema, name))
        return f"{schema}_{name}"

    def config(**kwargs) -> str:
        settings.update(kwargs)
        return ""

    try:
        _ENV.from_string(model.text).render(ref=ref, source=source, config=config, partition_date="DATE '1970-01-01'")
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise ModelError(f"{path}{f':{line}' if line else ''}: the template does not render: {exc}") from None
    model.partitioned = bool(settings.get("partitioned", False))
    if settings.get("publish"):
        publish = settings["publish"]
        if not isinstance(publish, Mapping) or "table" not in publish or "key" not in publish:
            raise ModelError(f"{model.where('publish')}: publish needs {{'table': ..., 'key': [...]}}")
        model.publish = Publish(publish["table"], tuple(publish["key"]))
    comment = re.findall(r"^--\s?(.*)$", model.text, re.MULTILINE)
    model.description = " ".join(comment) or f"SQL model {path.name}"
    return model


def load_models(models_dir: Path = MODELS_DIR) -> list[SqlModel]:
    """Every model of the folder, in dependency order; ModelError names the file of any problem."""
    models = {p.stem: _discover(p) for p in sorted(models_dir.glob("*.sql"))}
    for model in models.values():
        for name in model.refs:
            if name not in models:
                raise ModelError(f"{model.where(name)}: ref('{name}') names no model in {models_dir}")
        for schema, name in model.sources:
            if (schema, name) not in SOURCES:
                known = ", ".join(f"source('{s}', '{n}')" for s, n in SOURCES)
                raise ModelError(f"{model.where(name)}: source('{schema}', '{name}') is not declared; known: {known}")
    try:
        order = list(TopologicalSorter({name: set(m.refs) for name, m in models.items()}).static_order())
    except CycleError as exc:
        files = " -> ".join(str(models[name].path) for name in exc.args[1])
        raise ModelError(f"{files}: the models reference each other in a cycle") from None
    return [models[name] for name in order]


def run_model(spark, model: SqlModel, warehouse: WarehouseResource, partition_key: str | None):
    """Render and run one model; replace its partition (or table) in Delta; returns the written rows."""
    views: dict[str, str] = {}

    def bind(view: str, path: str) -> str:
        if view not in views:
            read_table(spark, path).createOrReplaceTempView(view)
            views[view] = path
        return view

    def ref(name: str) -> str:
        return bind(f"model_{name}", warehouse.table_path(f"{SQL_MODELS_ROOT}/{name}"))

    def source(schema: str, name: str) -> str:
        return bind(f"{schema}_{name}", warehouse.table_path(SOURCES[(schema, name)][1]))

    day = day_of(partition_key) if partition_key else None
    sql = _render(model, ref, source, f"DATE '{day.isoformat()}'" if day else "NULL")
    from pyspark.errors import PySparkException

    path = warehouse.table_path(model.table)
    try:
        df = spark.sql(sql)
        if day is not None:
            replace_where(df, path, day_predicate(day, PARTITION_COLUMN), PARTITION_COLUMN)
        else:
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    except PySparkException as exc:
        message = str(exc).strip()
        position = re.search(r"line (\d+),? pos(?:ition)? (\d+)", message)
        where = f"{model.path}:{position.group(1)}:{position.group(2)}" if position else str(model.path)
        raise ModelError(f"{where}: Spark rejected the SQL: {message.splitlines()[0]}") from None
    return read_table(spark, path, day_predicate(day, PARTITION_COLUMN) if day else None)


def publish_rows(postgres: PostgresResource, publish: Publish, df) -> int:
    """Upsert the written rows into PostgreSQL on the publish key (one transaction)."""
    rows = [row.asDict() for row in df.collect()]
    if not rows:
        return 0
    columns = [*rows[0], "updated_at"]
    now = datetime.now(UTC)
    return postgres.bulk_upsert(publish.table, columns, [(*row.values(), now) for row in rows], publish.key)


def build_model_asset(model: SqlModel) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(name) for name in model.refs] + [SOURCES[s][0] for s in model.sources]

    @dg.asset(
        name=model.name,
        description=model.description,
        group_name="sql_models",
        kinds={"spark", "sql", "delta"} | ({"postgres"} if model.publish else set()),
        partitions_def=event_days if model.partitioned else None,
        deps=deps,
        metadata={"file": str(model.path.relative_to(model.path.parents[1])), "table": model.table,
                  **({"published_to": model.publish.table} if model.publish else {})},
        automation_condition=refresh_on_upstream_update() if model.partitioned else None,
    )
    def _model(context: dg.AssetExecutionContext, spark: SparkResource, warehouse: WarehouseResource,
               postgres: PostgresResource) -> dg.MaterializeResult:
        written = run_model(spark.get_session(), model, warehouse,
                            context.partition_key if context.has_partition_key else None)
        metadata = {"rows": written.count(), "path": warehouse.table_path(model.table)}
        if model.publish:
            metadata["rows_published"] = publish_rows(postgres, model.publish, written)
        return dg.MaterializeResult(metadata=metadata)

    return _model


def build_sql_assets(models_dir: Path = MODELS_DIR) -> list[dg.AssetsDefinition]:
    return [build_model_asset(model) for model in load_models(models_dir)]
