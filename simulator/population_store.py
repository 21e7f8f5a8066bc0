"""The simulated population of one deployment, kept in the data directory across restarts.

A restarted simulator must continue the same people: the same homes, devices and IPs, the same drift
plan, and each user's last place and time (the CEP job remembers them: a user "moved" by a restart
would raise an impossible-travel alert), and it must never hand an id or an IP out twice (a new
scenario user reusing an old id or address would inherit that identity's history). So the store
keeps, in `<dir>/population.json` and `<dir>/users.jsonl`:

- the standing users with their state (persona, home, devices, IPs, drift, last event, cool-down,
  recent failed logins),
- the drift plan (who drifts, how, from when, over how long),
- the counters: next user index, IPs handed out (user and attacker ranges), scenarios started.

Event and session ids come from each run's own seed, never from the population's, so a restart never
repeats an id. The simulator checkpoints every half minute and on a clean stop; after a crash the
counters are advanced by a margin, so nothing handed out in the lost half minute is handed out again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from simulator.drift import Drift
from simulator.geo import CITIES
from simulator.personas import PERSONAS_BY_NAME
from simulator.population import Device, User

POPULATION_FILE = "population.json"
USERS_FILE = "users.jsonl"
# what a crash may have handed out since the last checkpoint, at the most (half a minute of scenarios)
CRASH_MARGIN = {"next_user_index": 1_000, "user_ips": 10_000, "attacker_ips": 10_000, "scenario_seq": 100}
_CITIES = {(c.name, c.country): c for c in CITIES}


@dataclass
class Population:
    seed: int
    users: list[User]
    drifts: list[Drift]
    next_user_index: int
    user_ips: int
    attacker_ips: int
    scenario_seq: int
    runs: int = 0  # starts of the simulator on this population


def _user_state(user: User) -> dict:
    return {
        "index": user.index,
        "user_id": user.user_id,
        "persona": user.persona.name,
        "city": [user.city.name, user.city.country],
        "home": [user.home_lat, user.home_lon],
        "devices": [[d.kind, d.device_id, d.user_agent, d.ip] for d in user.devices],
        "registers": user.registers,
        "drift": user.drift,
        "next_free_ms": user.next_free_ms,
        "last": [user.last_ts, user.last_country, user.last_lat, user.last_lon],
        "failures": user.failures,
    }


def _user_from_state(row: dict) -> User:
    devices = tuple(Device(*d) for d in row["devices"])
    user = User(row["index"], row["user_id"], PERSONAS_BY_NAME[row["persona"]], _CITIES[tuple(row["city"])],
                tuple(row["home"]), devices, row["registers"])
    user.drift = row["drift"]
    user.next_free_ms = row["next_free_ms"]
    user.last_ts, user.last_country, user.last_lat, user.last_lon = row["last"]
    user.failures = list(row["failures"])
    return user


class PopulationStore:
    """Reads and writes one population directory (atomically: a crash mid-write keeps the last copy)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def exists(self) -> bool:
        return (self.directory / POPULATION_FILE).is_file()

    def save(self, population: Population, clean: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        users_tmp = self.directory / f"{USERS_FILE}.tmp"
        with users_tmp.open("w", encoding="utf-8") as f:
            for user in population.users:
                f.write(json.dumps(_user_state(user), separators=(",", ":")) + "\n")
        meta = {
            "seed": population.seed,
            "users": len(population.users),
            "drifts": [[d.user.user_id, d.kind, d.start_ms, d.ramp_ms] for d in population.drifts],
            "next_user_index": population.next_user_index,
            "user_ips": population.user_ips,
            "attacker_ips": population.attacker_ips,
            "scenario_seq": population.scenario_seq,
            "runs": population.runs,
            "clean": clean,
        }
        meta_tmp = self.directory / f"{POPULATION_FILE}.tmp"
        meta_tmp.write_text(json.dumps(meta, indent=1) + "\n")
        # users first, then the metadata that names them: both files move into place only when whole
        os.replace(users_tmp, self.directory / USERS_FILE)
        os.replace(meta_tmp, self.directory / POPULATION_FILE)

    def load(self) -> Population:
        """The stored population; after an unclean stop (no final checkpoint), with its counters moved
        past anything the lost half minute may have handed out."""
        meta = json.loads((self.directory / POPULATION_FILE).read_text())
        with (self.directory / USERS_FILE).open(encoding="utf-8") as f:
            users = [_user_from_state(json.loads(line)) for line in f if line.strip()]
        by_id = {u.user_id: u for u in users}
        drifts = [Drift(by_id[uid], kind, start, ramp) for uid, kind, start, ramp in meta["drifts"]]
        margin = CRASH_MARGIN if not meta.get("clean") else dict.fromkeys(CRASH_MARGIN, 0)
        return Population(
            seed=meta["seed"],
            users=users,
            drifts=drifts,
            next_user_index=meta["next_user_index"] + margin["next_user_index"],
            user_ips=meta["user_ips"] + margin["user_ips"],
            attacker_ips=meta["attacker_ips"] + margin["attacker_ips"],
            scenario_seq=meta["scenario_seq"] + margin["scenario_seq"],
            runs=meta.get("runs", 0),
        )
