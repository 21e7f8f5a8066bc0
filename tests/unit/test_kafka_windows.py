"""Window planning of the Kafka sensor, against an in-memory partition log (the Kafka boundary)."""

import pytest

from analytics_defs.partitions import WINDOW_MS
from sensors.kafka_windows import plan_windows

pytestmark = pytest.mark.unit

T0 = 1_795_000_020_000 // WINDOW_MS * WINDOW_MS  # a minute boundary


class FakeLog:
    """Offset look-ups over partitions whose messages carry the given (monotonic) timestamps."""

    def __init__(self, timestamps: dict[int, list[int]]):
        self.timestamps = timestamps
        self.lookups = 0

    def watermarks(self):
        return {p: (0, len(ts)) for p, ts in self.timestamps.items()}

    def offsets_for_times(self, ts_ms):
        self.lookups += 1
        return {p: next((i for i, t in enumerate(ts) if t >= ts_ms), -1) for p, ts in self.timestamps.items()}

    def boundary(self, ts_ms, high):
        return {p: o if o >= 0 else high[p] for p, o in self.offsets_for_times(ts_ms).items()}


def minute(n: int, second: int = 0) -> int:
    return T0 + n * WINDOW_MS + second * 1000


def test_requests_each_closed_window_with_exact_offsets_and_skips_empty_ones():
    log = FakeLog({0: [minute(0, 1), minute(0, 59), minute(3, 5)], 1: [minute(0, 30), minute(4, 0)]})
    plan = plan_windows(log, None, T0, now_ms=minute(5, 10))
    assert [(r.window_start_ms, [(x.partition, x.start, x.end) for x in r.ranges]) for r in plan.requests] == [
        (minute(0), [(0, 0, 2), (1, 0, 1)]),
        (minute(3), [(0, 2, 3), (1, 1, 1)]),
        (minute(4), [(0, 3, 3), (1, 1, 2)]),
    ]
    assert plan.cursor_ms == minute(4) and plan.skip_reason is None
    # next tick: nothing new has closed
    again = plan_windows(log, plan.cursor_ms, T0, now_ms=minute(5, 30))
    assert again.requests == [] and again.cursor_ms == minute(4)
    assert "next closes at" in again.skip_reason


def test_open_window_is_not_requested_until_its_end_plus_grace():
    log = FakeLog({0: [minute(0, 10)]})
    assert plan_windows(log, None, T0, now_ms=minute(0, 59)).requests == []
    assert plan_windows(log, None, T0, now_ms=minute(1, 1), grace_ms=2000).requests == []
    assert len(plan_windows(log, None, T0, now_ms=minute(1, 2), grace_ms=2000).requests) == 1


def test_catch_up_is_bounded_per_tick_and_resumes_from_the_cursor():
    log = FakeLog({0: [minute(n, 1) for n in range(25)]})
    cursor, seen = None, []
    for _ in range(3):
        plan = plan_windows(log, cursor, T0, now_ms=minute(26), max_requests=10)
        seen += [r.window_start_ms for r in plan.requests]
        cursor = plan.cursor_ms
    assert seen == [minute(n) for n in range(25)]  # each window once, in order, 10 + 10 + 5


def test_a_long_empty_gap_is_crossed_with_few_lookups():
    log = FakeLog({0: [minute(0, 1), minute(10_000, 1)], 1: []})
    plan = plan_windows(log, minute(0), T0, now_ms=minute(10_002))
    assert [r.window_start_ms for r in plan.requests] == [minute(10_000)]
    assert log.lookups < 40  # binary search, not one look-up per empty minute


def test_empty_topic_skips_and_keeps_moving():
    plan = plan_windows(FakeLog({0: [], 1: []}), None, T0, now_ms=minute(3))
    assert plan.requests == [] and plan.cursor_ms == minute(1) and "no messages" in plan.skip_reason
