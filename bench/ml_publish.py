"""Publishing benchmark: 100,000 `user_segments` rows into PostgreSQL with the project's idempotent upsert
(resources.postgres.copy_upsert: binary COPY into a staging table, then one UPDATE of the changed rows and
one INSERT of the new keys, one transaction) against `psql \\copy` of the same rows into a plain table
(no key, no index), in the same run.

Starts its own PostgreSQL (free port, temporary directory, migrated). The rows are real scoring output:
synthetic features (bench/ml_data.py) scored by a freshly trained segmentation model. Each round times

  - upsert, new rows:   copy_upsert into an empty user_segments (every row inserted),
  - upsert, rerun:      the same rows again (a re-run partition: every key exists, nothing changed, nothing
                        is written),
  - upsert, changed:    every row with another model version (a re-scoring by a new model: every row
                        is updated),
  - psql \\copy:         psql reading the same rows (COPY text format, written beforehand) into the plain
                        table, emptied first; the time includes starting psql;
  - psql \\copy, keyed:  the same into an empty twin of user_segments with its primary key and index
                        (context: what the key and index alone cost, whatever writes the rows).

and prints rows/s of each (median over rounds) and the ratios upsert / \\copy (aim: at least 0.7 of the
plain table's). The keyed \\copy shows what user_segments' primary key and index cost on their own.
The password reaches psql as PGPASSWORD in its environment, never on its command line.

    .venv/bin/python -m bench.ml_publish [--rows 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.common import Services, append_result
from bench.ml_data import synthetic_features
from ml.scoring import USER_SEGMENT_COLUMNS, USER_SEGMENT_KEY, USER_SEGMENTS_TABLE, score_segments, table_rows
from ml.segmentation import train_segmentation
from resources.postgres import copy_upsert

PLAIN_TABLE = "user_segments_plain"  # the reference: no key, no index
TWIN_TABLE = "user_segments_twin"  # the same rows' cost with user_segments' key and index, for context


def scored_rows(n: int) -> list[tuple]:
    """`n` user_segments rows from scoring synthetic features with a trained model."""
    run = synthetic_features(int(n / 0.85) + 200, seed=1)  # about 90% of synthetic users are eligible
    model = train_segmentation(run.features)
    model.version = "1"
    return table_rows(score_segments(model, run.features, date(2026, 11, 26)), USER_SEGMENT_COLUMNS)[:n]


def copy_text(rows: list[tuple]) -> str:
    """The rows in COPY text format (tab-separated, \\N for NULL); the values hold no tab or newline."""
    return "".join("\t".join(r"\N" if v is None else str(v) for v in row) + "\n" for row in rows)


def psql_copy(url: str, path: Path, table: str = PLAIN_TABLE) -> float:
    """Seconds for `psql -c "\\copy <table> FROM '<path>'"`, password in the environment."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None) or ""
    command = f"\\copy {table} ({', '.join(USER_SEGMENT_COLUMNS)}) FROM '{path}'"
    started = time.perf_counter()
    done = subprocess.run(["psql", make_conninfo(**params), "-v", "ON_ERROR_STOP=1", "-q", "-c", command],
                          env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    rows = scored_rows(args.rows)
    print(f"{len(rows):,} rows scored in {time.perf_counter() - started:.1f} s", flush=True)
    version = USER_SEGMENT_COLUMNS.index("model_version")
    changed = [(*row[:version], "2", *row[version + 1:]) for row in rows]
    times: dict[str, list[float]] = {"upsert, new rows": [], "upsert, rerun": [], "upsert, changed": [],
                                     "psql \\copy": [], "psql \\copy, keyed": []}
    with Services(postgres=True) as svc, tempfile.TemporaryDirectory(dir=svc.cfg.data_dir) as tmp:
        url = svc.cfg.postgres_url
        data = Path(tmp) / "user_segments.tsv"
        data.write_text(copy_text(rows))
        os.chmod(tmp, 0o755)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {PLAIN_TABLE} (LIKE {USER_SEGMENTS_TABLE} INCLUDING DEFAULTS)")
            conn.execute(f"CREATE TABLE {TWIN_TABLE} (LIKE {USER_SEGMENTS_TABLE} INCLUDING ALL)")
            for round_ in range(args.rounds):
                conn.execute(f"TRUNCATE {USER_SEGMENTS_TABLE}, {PLAIN_TABLE}, {TWIN_TABLE}")
                conn.execute("CHECKPOINT")
                t = time.perf_counter()
                written = copy_upsert(conn, USER_SEGMENTS_TABLE, USER_SEGMENT_COLUMNS, rows, USER_SEGMENT_KEY)
                times["upsert, new rows"].append(time.perf_counter() - t)
                t = time.perf_counter()
                rewritten = copy_upsert(conn, USER_SEGMENTS_TABLE, USER_SEGMENT_COLUMNS, rows, USER_SEGMENT_KEY)
                times["upsert, rerun"].append(time.perf_counter() - t)
                t = time.perf_counter()
                updated = copy_upsert(conn, USER_SEGMENTS_TABLE, USER_SEGMENT_COLUMNS, changed, USER_SEGMENT_KEY)
                times["upsert, changed"].append(time.perf_counter() - t)
                times["psql \\copy"].append(psql_copy(url, data))
                times["psql \\copy, keyed"].append(psql_copy(url, data, TWIN_TABLE))
                stored = conn.execute(f"SELECT count(*) FROM {USER_SEGMENTS_TABLE}").fetchone()[0]
                copied = conn.execute(f"SELECT count(*) FROM {PLAIN_TABLE}").fetchone()[0]
                twin = conn.execute(f"SELECT count(*) FROM {TWIN_TABLE}").fetchone()[0]
                if not (written == updated == stored == copied == twin == len(rows) and rewritten == 0):
                    raise RuntimeError(f"round {round_}: upserted {written}/{rewritten}/{updated}, stored {stored}, "
                                       f"copied {copied}/{twin} of {len(rows)} rows")
                print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)

    rate = {k: len(rows) / statistics.median(v) for k, v in times.items()}
    upserts = ("upsert, new rows", "upsert, rerun", "upsert, changed")
    plain, keyed = "psql \\copy", "psql \\copy, keyed"
    ratios = {base: [rate[k] / rate[base] for k in upserts] for base in (plain, keyed)}
    lines = [
        f"{len(rows):,} user_segments rows, {args.rounds} rounds, median per method:",
        *(f"  {k:<20} {statistics.median(times[k]):6.3f} s  {rate[k]:>10,.0f} rows/s" for k in times),
        *(f"ratio upsert / {base} (new, rerun, changed): " + ", ".join(f"{r:.2f}" for r in ratios[base])
          for base in ratios),
        (f"aim >= 0.7 of the plain \\copy: {'met' if min(ratios[plain]) >= 0.7 else 'not met'}; "
         f"the keyed \\copy alone is {rate[keyed] / rate[plain]:.2f} of the plain one"),
    ]
    print("\n".join(lines))
    append_result("ML publishing (bench/ml_publish.py)", f"-m bench.ml_publish --rows {args.rows} --rounds {args.rounds}",
                  lines)


if __name__ == "__main__":
    main()
