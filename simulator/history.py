"""History on a new deployment: the simulated days before the first start, produced once.

A lakehouse that starts empty has nothing to train on and nothing to compare for a week. So on a data
directory whose simulator has no population yet, the simulator first produces `days` days of history of
the population it is about to create (the same generator, seed and rates as the live traffic that
follows, with event times from midnight UTC `days` days ago up to about now; the simulated clock, paced
so that a broker minute holds a window the landing runs can take), saves that population, and only then
continues it in real time. Its ground truth is an ordinary run directory (`history-<...>/`), read with
every other by `lakehouse score-alerts` and the model evaluation.

The plan (seed, span, how far it got) is kept in `<data dir>/simulator/history.json`, so a history is
produced once: a restart after it finished goes straight to real time, and a restart in the middle of it
regenerates the same stream and produces from the last checkpoint on (what was sent after that
checkpoint and before the stop arrives twice, with the same event ids, and silver keeps one copy).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from confluent_kafka import Producer

from simulator.config import CLOCK_SIMULATED, SimulatorConfig
from simulator.population_store import PopulationStore
from simulator.produce import run

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
DAY_MS = 86_400_000
END_MARGIN_MS = 60_000  # the history ends this long before it was planned: no event of it is in the future


@dataclass
class HistoryState:
    """What `history.json` holds: the history's plan and how far it got."""

    days: int
    seed: int
    start_ms: int
    end_ms: int
    run_id: str
    delivered: int = 0  # messages of the stream delivered at the last checkpoint
    reached_ms: int | None = None  # the simulated time produced so far
    done: bool = False
    skipped: str | None = None  # why no history was produced (a population that existed before)

    @property
    def span_days(self) -> float:
        """The days the history covers: `days` whole days and today up to its start."""
        return (self.end_ms - self.start_ms) / DAY_MS

    @property
    def days_produced(self) -> float:
        if self.done:
            return self.span_days
        return min(self.span_days, max(0.0, ((self.reached_ms or self.start_ms) - self.start_ms) / DAY_MS))


def state_path(simulator_dir: Path) -> Path:
    return Path(simulator_dir) / HISTORY_FILE


def read_state(path: Path) -> HistoryState | None:
    try:
        return HistoryState(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, state: HistoryState) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1) + "\n")
    os.replace(tmp, path)


def plan(days: int, now_ms: int, seed: int | None = None) -> HistoryState:
    """`days` whole days before today (from midnight UTC) up to a minute before `now_ms`."""
    start = (now_ms // DAY_MS - days) * DAY_MS
    seed = secrets.randbelow(2**31) if seed is None else seed
    return HistoryState(days, seed, start, now_ms - END_MARGIN_MS, f"history-{days}d-seed{seed}")


def produce_history(
    live: SimulatorConfig,
    producer: Producer,
    store: PopulationStore,
    simulator_dir: Path,
    days: int,
    pace: float,
    now_ms: int,
    stop: threading.Event | None = None,
) -> HistoryState | None:
    """Produce the history once (see the module's docstring); returns its state, None when there is none
    to produce (`days` is 0). `live` is the configuration of the real-time run that follows: the history
    takes its rate, population size, scenarios and thresholds."""
    path = state_path(simulator_dir)
    state = read_state(path)
    if days <= 0 or (state is not None and (state.done or state.skipped)):
        return state
    if state is None:
        if store.exists():  # a population from before history existed: its past is already on the topic
            state = replace(plan(days, now_ms, 0), skipped="the population existed before any history was planned")
            write_state(path, state)
            return state
        state = plan(days, now_ms)
        write_state(path, state)
    config = replace(live, seed=state.seed, clock=CLOCK_SIMULATED, start_ms=state.start_ms,
                     duration_s=(state.end_ms - state.start_ms) / 1000, count=None, run_id=state.run_id,
                     out_dir=Path(simulator_dir) / state.run_id)
    log.info("history: %d days from %s, seed %d, %s (resuming after %d messages)", state.days,
             state.run_id, state.seed, "new" if not state.delivered else "interrupted before", state.delivered)

    def checkpoint(position: int, reached_ms: int | None) -> None:
        state.delivered, state.reached_ms = position, reached_ms
        write_state(path, state)
        log.info("history: %.1f of %.1f days produced (%d messages)", state.days_produced, state.span_days, position)

    summary = run(config, producer, stop=stop, store=store, continue_population=False, pace=pace,
                  resume_after=state.delivered, checkpoint=checkpoint)
    if summary["stopped_early"] or summary["undelivered_after_flush"] or summary["failed"]:
        return state  # resumed from its last checkpoint on the next start
    state.delivered, state.reached_ms, state.done = summary["stream_position"], state.end_ms, True
    write_state(path, state)
    log.info("history: done, %d messages in %.0f s", summary["stream_position"], summary["elapsed_s"])
    return state
