"""The one-process MLflow launcher (stack/mlflow_server.py) against the installed MLflow."""

import inspect
import subprocess
import sys

import pytest

from settings import PROJECT_ROOT

pytestmark = pytest.mark.unit


def test_mlflow_still_starts_its_server_through_exec_cmd():
    import mlflow.server

    assert callable(getattr(mlflow.server, "_exec_cmd", None)), (
        "mlflow.server no longer has _exec_cmd: stack/mlflow_server.py now runs MLflow as parent and child")
    assert "_exec_cmd(" in inspect.getsource(mlflow.server._run_server)


def test_exec_server_becomes_the_command_with_the_extra_environment():
    code = ("from stack.mlflow_server import exec_server; "
            "exec_server(['/bin/sh', '-c', 'echo $EXTRA $$'], extra_env={'EXTRA': 'from-mlflow'}, "
            "capture_output=False, synchronous=False); print('not reached')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert out.split() == ["from-mlflow", str(proc.pid)]  # the same process, now the shell
