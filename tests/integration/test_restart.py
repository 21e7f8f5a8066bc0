"""Restarts do not flood alerts: the simulator restarted twice, then the whole stack through
`lakehouse down` / `lakehouse up`, and every CEP alert of the whole run scored against every truth file
the simulator wrote (`lakehouse score-alerts`): precision of every rule >= 0.99, every complete planted
scenario found."""

import re
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from settings import Settings
from stack.procs import Supervisor
from stack.services import Simulator
from tests.lakehouse_cli import cli_env, lakehouse

pytestmark = pytest.mark.integration

PHASE_S = 75  # traffic between restarts


def _alerts(cfg: Settings) -> int:
    with psycopg.connect(cfg.postgres_url) as conn:
        return conn.execute("SELECT count(*) FROM security_alerts").fetchone()[0]


def _settled(cfg: Settings, quiet_s: float = 15, timeout_s: float = 120) -> None:
    last, since, deadline = _alerts(cfg), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(1)
        now = _alerts(cfg)
        if now != last:
            last, since = now, time.monotonic()


def test_restarts_keep_every_rule_precise():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-restart-"))
    data_dir.chmod(0o755)
    env = cli_env(data_dir, SIMULATOR_ENABLED="1", SIMULATOR_RATE="100", SIMULATOR_SCENARIO_RATE="30")
    cfg = Settings.from_env(env)
    supervisor = Supervisor(cfg.run_dir, cfg.log_dir, cfg.host)
    try:
        up = lakehouse(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        simulator = Simulator(cfg)
        for _ in range(2):  # stop and start the simulator alone, twice
            time.sleep(PHASE_S)
            supervisor.stop(simulator.spec())
            supervisor.start(simulator.spec())
        time.sleep(PHASE_S)
        assert lakehouse(env, "down").returncode == 0  # then the whole stack
        up = lakehouse(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        time.sleep(PHASE_S)
        supervisor.stop(simulator.spec())  # a clean stop writes the last truth file
        _settled(cfg)

        runs = sorted(p.parent.name for p in (data_dir / "simulator").glob("*/labels.jsonl"))
        assert len(runs) == 4, runs
        scored = lakehouse(env, "score-alerts", "--min-precision", "0.99", "--min-recall", "1.0")
        assert scored.returncode == 0, scored.stdout + scored.stderr
        table = dict(re.findall(r"^(\w+)\s+(\d+)\s+\d+\s+\d+\s+\d+", scored.stdout, re.MULTILINE))
        assert sum(map(int, table.values())) >= 10, scored.stdout  # alerts were raised and scored
        travel = re.search(r"^impossible_travel\s+(\d+)\s+(\d+)\s+(\d+)", scored.stdout, re.MULTILINE)
        assert travel and travel.group(3) == "0", scored.stdout  # no user "travelled" through a restart
    finally:
        lakehouse(env, "down")
        shutil.rmtree(data_dir, ignore_errors=True)
