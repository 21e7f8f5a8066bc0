"""`mlflow server` as one process: `python -m stack.mlflow_server [mlflow server options]`.

MLflow's own command line prepares the server (its stores, settings and environment) and then starts
uvicorn as a child and waits on it for the rest of its life. The waiting parent holds a whole import of
MLflow, about 200 MB of memory that serves nothing (bench/RESULTS.md). Here the command line runs
unchanged up to that point, and the process then becomes uvicorn (exec) instead of forking it: the same
server, its options and environment exactly as `mlflow server` builds them, in one process.

Should an MLflow release start its server some other way (no `mlflow.server._exec_cmd`), it simply runs
as `mlflow server` does, parent and child; tests/unit/test_mlflow_server.py says so when that happens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence


def exec_server(cmd: Sequence[str], *, extra_env: Mapping[str, str] | None = None, **_popen_options) -> None:
    """Stands in for `mlflow.utils.process._exec_cmd` where `mlflow server` launches uvicorn: become it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], list(cmd), {**os.environ, **(extra_env or {})})


def main() -> None:
    import mlflow.server
    from mlflow.cli import cli

    if callable(getattr(mlflow.server, "_exec_cmd", None)):
        mlflow.server._exec_cmd = exec_server
    cli.main(args=["server", *sys.argv[1:]], prog_name="mlflow")


if __name__ == "__main__":
    main()
