from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agents.recommendations.keypool import (
    DISABLE_FOR,
    QUOTA_ZONE,
    KeyPool,
    KeyState,
    KeyView,
    Verdict,
    next_quota_reset,
)
from streams.redaction import key_fingerprint

KEYS = ["AIza-secret-one", "AIza-secret-two", "AIza-secret-three"]


class FakeClock:
    """Monotonic and wall time advancing together."""

    def __init__(self, wall: datetime) -> None:
        self.mono = 1000.0
        self.wall_time = wall.timestamp()

    def now(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_time

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_time += seconds


def pacific(*args: int) -> datetime:
    return datetime(*args, tzinfo=QUOTA_ZONE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(pacific(2026, 6, 15, 10, 0))


def make(clock: FakeClock, keys=KEYS, **kw) -> KeyPool:
    return KeyPool(keys, now=clock.now, **kw)


def use(pool: KeyPool) -> int:
    lease = pool.acquire()
    assert lease is not None
    pool.report_success(lease)
    return lease.index


def test_round_robin(clock):
    pool = make(clock)
    assert [use(pool) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert pool.next_ready_in() == 0.0


def test_rate_limited_key_cools_for_retry_delay(clock):
    pool = make(clock)
    lease = pool.acquire()
    pool.report_rate_limited(lease, 30.0)
    assert pool.state(0) is KeyState.COOLING
    assert [use(pool) for _ in range(4)] == [1, 2, 1, 2]
    clock.advance(29.9)
    assert pool.state(0) is KeyState.COOLING
    clock.advance(0.1)
    assert pool.state(0) is KeyState.READY
    assert 0 in [use(pool) for _ in range(3)]


def test_next_ready_in_is_the_soonest_cooldown(clock):
    pool = make(clock, keys=KEYS[:2])
    pool.report_rate_limited(pool.acquire(), 30.0)
    pool.report_rate_limited(pool.acquire(), 12.0)
    assert pool.acquire() is None
    assert pool.next_ready_in() == pytest.approx(12.0)
    clock.advance(12.0)
    assert pool.next_ready_in() == 0.0
    assert use(pool) == 1


def test_daily_quota_parks_until_pacific_midnight(clock):
    pool = make(clock, keys=KEYS[:1], park_slack=0.0)
    pool.report_daily_quota(pool.acquire(), clock.wall())
    assert pool.state(0) is KeyState.PARKED
    assert pool.next_ready_in() == pytest.approx(14 * 3600)  # 10:00 -> 24:00 PDT
    clock.advance(14 * 3600 - 1)
    assert pool.acquire() is None
    clock.advance(1)
    assert use(pool) == 0


def test_park_slack_is_added(clock):
    pool = make(clock, keys=KEYS[:1], park_slack=120.0)
    pool.report_daily_quota(pool.acquire(), clock.wall())
    assert pool.next_ready_in() == pytest.approx(14 * 3600 + 120)


@pytest.mark.parametrize(
    ("local", "hours"),
    [
        (pacific(2026, 3, 8, 0, 30), 22.5),  # spring forward: the day has 23 hours
        (pacific(2026, 11, 1, 0, 30), 24.5),  # fall back: the day has 25 hours
        (pacific(2026, 6, 15, 23, 59, 59), 1 / 3600),
        (pacific(2026, 12, 31, 12, 0), 12.0),  # across a year end
    ],
)
def test_park_duration_across_dst(local, hours):
    clock = FakeClock(local)
    pool = make(clock, keys=KEYS[:1], park_slack=0.0)
    pool.report_daily_quota(pool.acquire(), clock.wall())
    assert pool.next_ready_in() == pytest.approx(hours * 3600)
    reset = datetime.fromtimestamp(next_quota_reset(local.timestamp()), QUOTA_ZONE)
    assert (reset.hour, reset.minute, reset.date()) == (0, 0, local.date() + timedelta(days=1))


def test_midnight_itself_parks_for_a_whole_day():
    midnight = pacific(2026, 6, 16)
    assert next_quota_reset(midnight.timestamp()) == pacific(2026, 6, 17).timestamp()


def test_rate_limit_does_not_shorten_a_park(clock):
    pool = make(clock, keys=KEYS[:1], max_in_flight=2, park_slack=0.0)
    first, second = pool.acquire(), pool.acquire()
    pool.report_daily_quota(first, clock.wall())
    pool.report_rate_limited(second, 5.0)
    assert pool.state(0) is KeyState.PARKED
    assert pool.next_ready_in() == pytest.approx(14 * 3600)


def test_invalid_key_is_disabled_for_hours_then_tried_again(clock):
    pool = make(clock, keys=KEYS[:2])
    verdict = pool.report_invalid(pool.acquire())
    assert verdict == Verdict(key_fingerprint(KEYS[0]), KeyState.DISABLED, DISABLE_FOR)
    assert DISABLE_FOR == 3 * 3600
    assert pool.state(0) is KeyState.DISABLED
    clock.advance(DISABLE_FOR - 1)
    assert [use(pool) for _ in range(3)] == [1, 1, 1]
    assert pool.snapshot()[verdict.fingerprint]["ready_in"] == pytest.approx(1.0)
    clock.advance(1)
    assert pool.state(0) is KeyState.READY
    assert sorted(use(pool) for _ in range(2)) == [0, 1]


def test_all_disabled(clock):
    pool = make(clock, keys=KEYS[:2])
    pool.report_invalid(pool.acquire())
    pool.report_invalid(pool.acquire())
    assert pool.acquire() is None
    assert pool.next_ready_in() is None


def test_server_errors_back_off_exponentially_and_reset_on_success(clock):
    pool = make(clock, keys=KEYS[:1], server_backoff_base=1.0, server_backoff_max=5.0)
    waits = []
    for _ in range(5):
        clock.advance(pool.next_ready_in())
        pool.report_server_error(pool.acquire())
        waits.append(pool.next_ready_in())
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    clock.advance(5.0)
    use(pool)
    pool.report_server_error(pool.acquire())
    assert pool.next_ready_in() == 1.0


def test_bounded_concurrency_per_key(clock):
    pool = make(clock, keys=KEYS[:1], max_in_flight=1)
    lease = pool.acquire()
    assert pool.acquire() is None
    assert pool.next_ready_in() == 0.0  # ready, only busy
    pool.release(lease)
    assert pool.acquire() is not None


def test_reports_return_what_to_share(clock):
    pool = make(clock, keys=KEYS[:1], max_in_flight=4, park_slack=0.0, server_backoff_base=2.0)
    fp = key_fingerprint(KEYS[0])
    leases = [pool.acquire() for _ in range(3)]
    assert pool.report_rate_limited(leases[0], 30.0) == Verdict(fp, KeyState.COOLING, 30.0)
    assert pool.report_server_error(leases[1]) == Verdict(fp, KeyState.COOLING, 2.0)
    assert pool.report_daily_quota(leases[2], clock.wall()) == Verdict(fp, KeyState.PARKED, 14 * 3600)


def test_the_daily_park_follows_the_wall_time_given(clock):
    pool = make(clock, keys=KEYS[:1], park_slack=0.0)
    verdict = pool.report_daily_quota(pool.acquire(), pacific(2026, 6, 15, 23, 0).timestamp())
    assert verdict.seconds == pytest.approx(3600)  # the given (Redis) time, not the pool's clock
    assert pool.next_ready_in() == pytest.approx(3600)


def test_candidates_in_round_robin_order_and_take(clock):
    pool = make(clock, max_in_flight=1)
    assert pool.candidates() == [0, 1, 2]
    lease = pool.take(1)
    assert (lease.index, lease.fingerprint) == (1, key_fingerprint(KEYS[1]))
    assert pool.candidates() == [2, 0]  # past the taken key; key 1 is busy
    pool.report_rate_limited(pool.take(2), 10.0)
    assert pool.candidates() == [0]


def test_observe_merges_another_workers_view(clock):
    pool = make(clock)
    pool.observe(0, KeyView(blocked_for=30.0))
    pool.observe(1, KeyView(blocked_for=3600.0, parked=True))
    pool.observe(2, KeyView(disabled_for=DISABLE_FOR))
    assert [pool.state(i) for i in range(3)] == [KeyState.COOLING, KeyState.PARKED, KeyState.DISABLED]
    assert pool.acquire() is None
    assert pool.next_ready_in() == pytest.approx(30.0)
    snap = pool.snapshot()
    assert [s["state"] for s in snap.values()] == ["cooling", "parked", "disabled"]
    assert [s["ready_in"] for s in snap.values()] == pytest.approx([30.0, 3600.0, DISABLE_FOR])


def test_observe_only_lengthens(clock):
    pool = make(clock, keys=KEYS[:1], park_slack=0.0)
    pool.report_daily_quota(pool.acquire(), clock.wall())
    pool.observe(0, KeyView(blocked_for=5.0))  # a shorter cooldown seen elsewhere
    pool.observe(0, KeyView())  # or nothing at all (Redis lost it)
    assert pool.state(0) is KeyState.PARKED
    assert pool.next_ready_in() == pytest.approx(14 * 3600)


def test_a_paced_key_waits_for_its_slot_and_is_skipped_meanwhile(clock):
    pool = make(clock, keys=KEYS[:2])
    pool.observe(0, KeyView(paced_for=0.5))
    assert pool.state(0) is KeyState.READY  # pacing is no state: only a later slot
    assert [use(pool) for _ in range(2)] == [1, 1]
    pool.observe(1, KeyView(paced_for=0.2))
    assert pool.acquire() is None
    assert pool.next_ready_in() == pytest.approx(0.2)
    clock.advance(0.2)
    assert use(pool) == 1
    clock.advance(0.3)
    assert pool.candidates() == [0, 1]


def test_a_lease_is_reported_once(clock):
    pool = make(clock)
    lease = pool.acquire()
    pool.report_success(lease)
    with pytest.raises(RuntimeError):
        pool.report_invalid(lease)
    assert pool.state(0) is KeyState.READY


def test_snapshot_counts_and_hides_keys(clock):
    pool = make(clock)
    use(pool)
    pool.report_rate_limited(pool.acquire(), 30.0)
    pool.report_invalid(pool.acquire())
    snap = pool.snapshot()
    fps = [key_fingerprint(k) for k in KEYS]
    assert list(snap) == fps == pool.fingerprints
    assert snap[fps[0]] == {
        "ok": 1,
        "rate_limited": 0,
        "errors": 0,
        "in_flight": 0,
        "state": "ready",
        "ready_in": 0.0,
    }
    assert snap[fps[1]]["state"] == "cooling" and snap[fps[1]]["rate_limited"] == 1
    assert snap[fps[1]]["ready_in"] == pytest.approx(30.0)
    assert snap[fps[2]]["state"] == "disabled" and snap[fps[2]]["errors"] == 1
    text = repr(pool) + repr(snap) + repr(pool.acquire())
    assert fps[0] in text
    assert not any(k in text for k in KEYS)


def test_keys_are_required_and_unique(clock):
    with pytest.raises(ValueError):
        make(clock, keys=[])
    with pytest.raises(ValueError):
        make(clock, keys=["a", "a"])
