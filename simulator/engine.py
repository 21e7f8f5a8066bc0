"""The event stream: background sessions, drifting users, injected scenarios and malformed messages,
merged in occurred_at order on one clock.

Time advances one second at a time. For each second the engine first starts the sessions that begin
in it (background users drawn by persona and local hour, as many as keep the planned events at
`rate` per second; scheduled drift sessions and scenarios), encodes all their events at once into
per-second buckets, then emits the second's bucket sorted by time. Background sessions start
`WARMUP_MS` before the first message, so the stream opens at its steady rate. A session is generated
whole, so every per-user guard of simulator.traffic sees the user's complete history. The same seed
and start time give the same messages, ids and labels; in the real-time clock each message is held
until its occurred_at.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from itertools import accumulate, count
from operator import itemgetter
from typing import NamedTuple

from contract.user_events import QuarantineReason
from simulator.config import CLOCK_REALTIME, OPEN_ENDED_HORIZON_MS, SimulatorConfig
from simulator.drift import BASE_SESSION_GAP_MS, Drift, plan_drifts
from simulator.geo import City
from simulator.malformed import HEADER_EXPECTED, KIND_DUPLICATE, KIND_MALFORMED, MalformedFactory
from simulator.personas import PERSONAS_BY_NAME
from simulator.population import IpPool, User, build_population, new_device, new_user
from simulator.population_store import Population
from simulator.scenarios import KIND_SCENARIO, TEMPLATES, Plan, ScenarioContext, build
from simulator.traffic import KIND_BACKGROUND, Guards, SessionWriter
from simulator.truth import RULE_BEHAVIOR_ANOMALY, GroundTruth, Label, MalformedRecord

KIND_DRIFT = "drift"  # events of a drifting user from its drift start on
KINDS: tuple[str, ...] = (KIND_BACKGROUND, KIND_DRIFT, KIND_SCENARIO, KIND_MALFORMED, KIND_DUPLICATE)
IDENTITY_SPACE_USERS = 100_000_000  # user indices per identity space


def user_ip_base(identity_space: int) -> str:
    """Every user device gets an address counted up from here: 24.0.0.0 for the deployment's own users."""
    return f"{24 + identity_space}.0.0.0"

ATTACKER_IP_BASE = "185.0.0.0"  # attackers' addresses: a range no user ever gets
# Background sessions start this long before the first message, so the stream opens at its steady
# rate instead of ramping up while the first sessions unfold (warm-up events are not encoded).
WARMUP_MS = 300_000
_DRAWS = 16  # draws of a user before a second is given up as saturated
MIN_SESSIONS_FOR_GAP = 50  # background sessions of a persona before its measured session gap is used


_occurred_at = itemgetter(0)


class Message(NamedTuple):
    """One Kafka message: key, payload, headers (only on malformed/duplicates) and what it is."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] | None
    kind: str


class _Tag:
    """Marks an event that belongs to ground-truth labels."""

    __slots__ = ("event_id", "labels")

    def __init__(self, event_id: str, labels: tuple[Label, ...]):
        self.event_id = event_id
        self.labels = labels


class Simulator:
    """Generates one run's messages (`events()`) and keeps its ground truth (`ground_truth()`).

    `malformed[i]` describes the i-th message that carries headers. `stop` ends the stream at the next
    message; `idle(seconds)` is what the real-time clock does while it waits (a producer passes its
    `poll`, so delivery reports are served meanwhile).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        stop: threading.Event | None = None,
        idle: Callable[[float], object] = time.sleep,
        population: Population | None = None,
    ):
        config.validate()
        self.config = config
        self._stop = stop or threading.Event()
        self._idle = idle
        seed, t = config.seed, config.thresholds
        self.start_ms = config.resolved_start_ms(int(time.time() * 1000))
        horizon = config.horizon_ms
        self.end_ms = self.start_ms + horizon if config.duration_s is not None else None
        self._deadline = self.start_ms + horizon if horizon is not None else None
        self._clock_start_ms = self.start_ms - WARMUP_MS
        # the standing population: built from the seed, or continued from a stored one (its own seed)
        if population is None:
            first_index = config.identity_space * IDENTITY_SPACE_USERS
            self._ips = IpPool(user_ip_base(config.identity_space))
            standing = build_population(random.Random(f"{seed}:population"), config.users, self._ips, first_index)
            self._population_seed, attacker_ips, self._scenario_base = seed, 0, 0
            self._next_user_index = first_index + config.users
        else:
            self._ips = IpPool(user_ip_base(config.identity_space), population.user_ips)
            standing = population.users
            self._population_seed, self._next_user_index = population.seed, population.next_user_index
            attacker_ips, self._scenario_base = population.attacker_ips, population.scenario_seq
        self._standing: list[User] = standing
        self.users: list[User] = list(standing)  # plus the users scenarios create
        self._rng = random.Random(f"{seed}:traffic")
        self._writer = SessionWriter(self._rng, Guards(t))
        self.labels: list[Label] = []
        self._planned: dict[int, int] = {}  # id(label) -> events planned for it
        self._drifts: list[tuple[Drift, Label]] = []
        self._schedule: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = count()
        self._buckets: dict[int, list[tuple]] = {}
        self.counts: Counter[str] = Counter()
        self.malformed_by_reason: Counter[str] = Counter()
        self.scenario_counts: Counter[str] = Counter()
        self.sessions = 0
        self.sessions_skipped_busy = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.malformed: list[MalformedRecord] = []
        self._gap_rng = random.Random(f"{seed}:malformed-gaps")
        self._malformed_factory = MalformedFactory(
            random.Random(f"{seed}:malformed"), config.max_payload_bytes, config.future_offset_ms
        )
        self._attacker_ips = IpPool(ATTACKER_IP_BASE, attacker_ips)
        drift_rng = random.Random(f"{seed}:drift")
        drifts = (self._plan_drifts(drift_rng) if population is None else population.drifts) if config.scenarios else []
        self._prepare_arrivals()  # the background population: everyone who does not drift
        if config.scenarios:
            self._schedule_drifts(drifts, drift_rng)
            self._scenario_ctx = ScenarioContext(
                random.Random(f"{seed}:scenarios"), t, self._new_scenario_user, self._attacker_ips
            )
            self._scenario_turn = 0
            if config.scenario_rate > 0:
                self._at(self.start_ms + int(self._scenario_interval_ms() / 2), self._scenario_tick)

    # -- set-up -------------------------------------------------------------------------------------

    def _plan_drifts(self, rng: random.Random) -> list[Drift]:
        cfg = self.config
        n = cfg.drift_users if cfg.drift_users is not None else max(1, cfg.users // 200)
        candidates = [u for u in self.users if u.persona.name != "bot_like_scraper"]
        horizon = cfg.horizon_ms or OPEN_ENDED_HORIZON_MS
        return plan_drifts(rng, candidates, n, self.start_ms, horizon, lambda: new_device(rng, "bot", self._ips))

    def _schedule_drifts(self, drifts: list[Drift], rng: random.Random) -> None:
        for i, drift in enumerate(drifts):
            label = Label(
                f"drift-{i:05d}",
                "drift",
                drift.user.user_id,
                None,
                RULE_BEHAVIOR_ANOMALY,
                True,
                details={
                    "drift": drift.kind,
                    "drift_start_ms": str(drift.start_ms),
                    "ramp_ms": str(drift.ramp_ms),
                },
            )
            self.labels.append(label)
            self._drifts.append((drift, label))
            self._at(drift.next_session_ms(self.start_ms, rng, self._session_gap_ms(drift.user)),
                     self._drift_session_fn(drift, label, rng))

    def _prepare_arrivals(self) -> None:
        """Per UTC hour, cumulative weights of the (persona, time zone) groups of background users."""
        groups: dict[tuple[str, float], list[User]] = {}
        for user in self.users:
            if user.drift is None:
                groups.setdefault((user.persona.name, user.city.utc_offset_h), []).append(user)
        self._groups = list(groups.values())
        self._persona_users = Counter(name for (name, _), members in groups.items() for _ in members)
        self._persona_sessions: Counter[str] = Counter()
        # expected session gap per persona before any session is seen: sessions share the rate by weight
        weight = {name: self._persona_users[name] * p.activity * sum(p.hour_weights) / 24
                  for name, p in PERSONAS_BY_NAME.items()}
        total = sum(weight.values())
        events_per_session = sum(weight[n] * (p.body_events_mean + 2) for n, p in PERSONAS_BY_NAME.items()) / (total or 1)
        self._prior_gap_ms = {
            name: (self._persona_users[name] * events_per_session * 1000 / (self.config.rate * weight[name] / total)
                   if weight[name] else BASE_SESSION_GAP_MS)
            for name in PERSONAS_BY_NAME
        }
        self._hourly = []
        for hour in range(24):
            weights = [
                len(members)
                * PERSONAS_BY_NAME[name].activity
                * PERSONAS_BY_NAME[name].hour_weights[int(hour + offset) % 24]
                for (name, offset), members in groups.items()
            ]
            self._hourly.append((list(accumulate(weights)), sum(weights)))
        self._planned_events = 0

    def _session_gap_ms(self, user: User, now_ms: int | None = None) -> float:
        """The mean time between two sessions of a background user of `user`'s persona in this run so far
        (its users' sessions over the time elapsed): what a drifting user keeps to before its drift."""
        sessions, users = self._persona_sessions[user.persona.name], self._persona_users[user.persona.name]
        elapsed = (now_ms if now_ms is not None else self.start_ms) - self._clock_start_ms
        if sessions < MIN_SESSIONS_FOR_GAP or elapsed <= 0:
            return self._prior_gap_ms[user.persona.name]
        return users * elapsed / sessions

    def _scenario_interval_ms(self) -> float:
        return 60_000 / self.config.scenario_rate

    def _new_scenario_user(self, city: City) -> User:
        index = self._next_user_index
        self._next_user_index += 1
        return new_user(self._scenario_ctx.rng, index, PERSONAS_BY_NAME["casual_browser"], self._ips, city)

    # -- session sources ----------------------------------------------------------------------------

    def _at(self, ts: int, action: Callable[[int], None]) -> None:
        heapq.heappush(self._schedule, (ts, next(self._seq), action))

    def _put(self, ts: int, key: bytes, value: bytes, kind: str, tag: _Tag | None) -> None:
        bucket = self._buckets.get(ts // 1000)
        if bucket is None:
            bucket = self._buckets[ts // 1000] = []
        bucket.append((ts, key, value, kind, tag))

    def _admit_sessions(self, second: int) -> None:
        """Start background sessions in `second` until the events planned since the start reach `rate`
        per second. Users are drawn by persona and local hour; a busy user (in a session or its
        cooldown) is skipped, and when every draw finds busy users the second stays short (counted)."""
        rng, buckets, writer, emit_from = self._rng, self._buckets, self._writer, self.start_ms
        target = self.config.rate * (second + 1 - self._clock_start_ms / 1000)
        cumulative, total = self._hourly[(second // 3600) % 24]
        if not total:  # every user drifts: no background population
            return
        first_ms = max(second * 1000, self._clock_start_ms)
        while self._planned_events < target:
            start = first_ms + int(rng.random() * ((second + 1) * 1000 - first_ms))
            for _ in range(_DRAWS):
                group = self._groups[bisect(cumulative, rng.random() * total)]
                user = group[int(rng.random() * len(group))]
                if user.next_free_ms <= start:
                    break
            else:
                self.sessions_skipped_busy += 1
                return
            before = writer.planned
            key = user.user_id.encode()
            for ts, _, payload in writer.session(user, start, user.persona, emit_from_ms=emit_from):
                bucket = buckets.get(ts // 1000)
                if bucket is None:
                    bucket = buckets[ts // 1000] = []
                bucket.append((ts, key, payload, KIND_BACKGROUND, None))
            self._planned_events += writer.planned - before
            self.sessions += 1
            self._persona_sessions[user.persona.name] += 1

    def _drift_session_fn(self, drift: Drift, label: Label, rng: random.Random) -> Callable[[int], None]:
        user = drift.user

        def session(start: int) -> None:
            events = self._writer.session(
                user, start, drift.persona(start), drift.device(start, rng), drift.destination(start, rng)
            )
            key = user.user_id.encode()
            for ts, event_id, payload in events:
                if ts >= drift.start_ms:
                    self._put(ts, key, payload, KIND_DRIFT, _Tag(event_id, (label,)))
                else:
                    self._put(ts, key, payload, KIND_BACKGROUND, None)
            self.sessions += 1
            self._at(drift.next_session_ms(user.next_free_ms, rng, self._session_gap_ms(user, start)), session)

        return session

    def _scenario_tick(self, start: int) -> None:
        """Start the next scenario of the rotation that can finish before the run's planned end."""
        names = list(TEMPLATES)
        for _ in range(len(names)):
            name = names[self._scenario_turn % len(names)]
            self._scenario_turn += 1
            scenario_id = f"sc-{self._scenario_base + sum(self.scenario_counts.values()):06d}"
            plan = build(self._scenario_ctx, name, scenario_id, start, self._deadline)
            if plan is not None:
                self._accept(plan)
                break
        gap = self._scenario_interval_ms() * self._scenario_ctx.rng.uniform(0.5, 1.5)
        self._at(start + max(1, int(gap)), self._scenario_tick)

    def _accept(self, plan: Plan) -> None:
        self.scenario_counts[plan.scenario] += 1
        self.users.extend(plan.users)
        self.labels.extend(plan.labels)
        for ts, key, payload, event_id, labels in plan.events:
            self._put(ts, key, payload, KIND_SCENARIO, _Tag(event_id, labels))
            for label in labels:
                self._planned[id(label)] = self._planned.get(id(label), 0) + 1

    def _run_schedule(self, until_ms: int) -> None:
        schedule = self._schedule
        while schedule and schedule[0][0] < until_ms:
            ts, _, action = heapq.heappop(schedule)
            action(ts)

    # -- the stream ---------------------------------------------------------------------------------

    def _malformed_countdown(self) -> int:
        """Background events until the next malformed message (geometric); -1: never."""
        p = self.config.malformed_rate
        if p <= 0:
            return -1
        return int(math.log(1.0 - self._gap_rng.random()) / math.log(1.0 - p)) + 1

    def _wait_until(self, ts: int) -> None:
        while not self._stop.is_set():
            remaining = ts / 1000 - time.time()
            if remaining <= 0:
                return
            self._idle(min(remaining, 0.2))

    def events(self) -> Iterator[Message]:
        """The run's messages in order, until its duration, its count, or `stop`."""
        realtime = self.config.clock == CLOCK_REALTIME
        limit = self.config.count or math.inf
        end = self.end_ms if self.end_ms is not None else math.inf
        stop, counts, buckets = self._stop, self.counts, self._buckets
        factory, malformed, by_reason = self._malformed_factory, self.malformed, self.malformed_by_reason
        produced = 0
        countdown = self._malformed_countdown()
        second = self._clock_start_ms // 1000
        while second * 1000 < end:
            self._admit_sessions(second)
            self._run_schedule((second + 1) * 1000)
            bucket = buckets.pop(second, None)
            second += 1
            if not bucket:
                continue
            bucket.sort(key=_occurred_at)  # stable: equal times keep their (deterministic) insertion order
            for ts, key, value, kind, tag in bucket:
                if ts >= end or stop.is_set():
                    return
                if realtime and ts > time.time() * 1000:
                    self._wait_until(ts)
                yield Message(key, value, None, kind)
                if self.first_ts is None:
                    self.first_ts = ts
                self.last_ts = ts
                counts[kind] += 1
                produced += 1
                if tag is not None:
                    for label in tag.labels:
                        label.add_event(tag.event_id, ts)
                if produced >= limit:
                    return
                if kind is KIND_BACKGROUND:
                    countdown -= 1
                    if countdown == 0:
                        countdown = self._malformed_countdown()
                        bad_key, payload, record = factory.make(key, value, ts)
                        malformed.append(record)
                        duplicate = record.expected_reason == QuarantineReason.DUPLICATE_EVENT_ID
                        bad_kind = KIND_DUPLICATE if duplicate else KIND_MALFORMED
                        yield Message(
                            bad_key, payload, [(HEADER_EXPECTED, record.expected_reason.encode())], bad_kind
                        )
                        counts[bad_kind] += 1
                        by_reason[record.expected_reason] += 1
                        produced += 1
                        if produced >= limit:
                            return

    # -- the population, to continue it in the next run -------------------------------------------

    def population(self, runs: int = 0) -> Population:
        """The standing users with their state now, the drift plan and every counter handed out."""
        return Population(
            seed=self._population_seed,
            users=self._standing,
            drifts=[drift for drift, _ in self._drifts],
            next_user_index=self._next_user_index,
            user_ips=self._ips.taken,
            attacker_ips=self._attacker_ips.taken,
            scenario_seq=self._scenario_base + sum(self.scenario_counts.values()),
            runs=runs,
        )

    # -- ground truth -------------------------------------------------------------------------------

    def ground_truth(self, extra_summary: dict | None = None) -> GroundTruth:
        """Users, labels (with completeness as of now), malformed records and the run summary."""
        for label in self.labels:
            planned = self._planned.get(id(label))
            if planned is not None:
                label.complete = len(label.event_ids) == planned
        for drift, label in self._drifts:
            label.complete = self.last_ts is not None and self.last_ts >= drift.start_ms + drift.ramp_ms
        return GroundTruth(
            users=[user.record() for user in self.users],
            labels=self.labels,
            malformed=self.malformed,
            summary={**self.summary(), **(extra_summary or {})},
        )

    def summary(self) -> dict:
        cfg = self.config
        span_s = ((self.last_ts or 0) - (self.first_ts or 0)) / 1000
        return {
            "seed": cfg.seed,
            "clock": cfg.clock,
            "topic": cfg.topic,
            "start_ms": self.start_ms,
            "first_occurred_at": self.first_ts,
            "last_occurred_at": self.last_ts,
            "target_rate": cfg.rate,
            "event_rate": round(sum(self.counts.values()) / span_s, 1) if span_s > 0 else None,
            "users": len(self._standing),
            "population_seed": self._population_seed,
            "messages": sum(self.counts.values()),
            "by_kind": {kind: self.counts.get(kind, 0) for kind in KINDS},
            "malformed_by_reason": dict(sorted(self.malformed_by_reason.items())),
            "scenarios": dict(sorted(self.scenario_counts.items())),
            "labels": len(self.labels),
            "drift_users": len(self._drifts),
            "sessions": self.sessions,
            "sessions_skipped_busy": self.sessions_skipped_busy,
            "malformed_rate": cfg.malformed_rate,
            "max_payload_bytes": cfg.max_payload_bytes,
            "thresholds": asdict(cfg.thresholds),
        }
