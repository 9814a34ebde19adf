"""The recommendation agents under Faust's ``test_context`` with fake ports (no Kafka, Redis or Gemini)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from unittest.mock import AsyncMock

import pytest

from agents.recommendations import agent as reco
from agents.recommendations.advice import Recommendation, UserOrderStats
from agents.recommendations.advisor import UserAdvisor
from agents.recommendations.agent import Recommendations
from agents.recommendations.batches import BatchCounts, BatchStatus
from agents.recommendations.counter import BatchCounter
from agents.recommendations.gemini_errors import AllKeysExhausted, RecommendationFailed
from agents.recommendations.outbox import BatchOutbox
from agents.recommendations.planner import BatchPlanner
from agents.recommendations.usage import Answer, TokenUsage
from models.records import BatchProgress, BatchTrigger, RecommendationRequest
from streams.concurrency import KeyedPool
from streams.dead_letters import DeadLetterSink
from tests.unit.fakes import FakeTopic

TODAY = date(2026, 11, 25)


def stats(user_id: int) -> UserOrderStats:
    return UserOrderStats(
        user_id=user_id,
        name=f"User {user_id}",
        order_count=5,
        total_spent=Decimal("2250.00"),
        average_spend=Decimal("450.00"),
        favourite_combos=[("Business", 5)],
        favourite_items=[("Soup", 5)],
        favourite_categories=[("soup", 5)],
        weekdays=[("Monday", 5)],
        recent_notes=["no onions"],
        cafes=[("Cafe", 5)],
    )


class FakeUsers:
    def __init__(self, active: list[int]) -> None:
        self.active = active

    async def active_user_ids(self, today: date) -> list[int]:
        return list(self.active)

    async def user_stats(self, user_id: int, today: date) -> UserOrderStats | None:
        return stats(user_id) if user_id in self.active else None


class FakeCache:
    def __init__(self) -> None:
        self.entries: dict[int, tuple[Recommendation, datetime]] = {}

    async def generated_on(self, user_id: int) -> date | None:
        entry = self.entries.get(user_id)
        return entry[1].date() if entry else None

    async def store(self, user_id: int, recommendation: Recommendation, generated_at: datetime) -> None:
        self.entries[user_id] = (recommendation, generated_at)


class FakeGemini:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.prompts: list[str] = []

    async def recommend(self, prompt: str) -> Answer:
        self.prompts.append(prompt)
        if self.failures:
            raise self.failures.pop(0)
        return Answer(Recommendation(summary="Eat well", tips=["Try the soup"]), TokenUsage(300, 40, 340))


NOON = datetime(2026, 11, 25, 12, 0, tzinfo=reco.settings.zone).timestamp()


@pytest.fixture
def wired(monkeypatch):
    """The real app and agents over services built as the wiring does, with fake ports and recorded sends."""
    app = reco.app
    app.finalize()
    app.flow_control.resume()
    for table in (reco.recommendation_batches, reco.recommendation_runs, reco.recommendation_batch_users):
        table.data.clear()
        monkeypatch.setattr(
            table,
            "send_changelog",
            lambda partition, *a, **k: SimpleNamespace(message=SimpleNamespace(partition=partition)),
        )
    topics = {name: FakeTopic(name) for name in ("triggers", "requests", "progress", "dead_letters")}
    users, cache, gemini = FakeUsers([1, 2, 3]), FakeCache(), FakeGemini()
    outbox = BatchOutbox(requests=topics["requests"], progress=topics["progress"])
    zone = reco.settings.zone
    planner = BatchPlanner(
        runs=reco.recommendation_runs,
        users=users,
        outbox=outbox,
        triggers=topics["triggers"],
        dead_letters=DeadLetterSink(topics["dead_letters"]),
        cron=reco.settings.recommendations_cron,
        zone=zone,
        clock=lambda: NOON,
    )
    advisor = UserAdvisor(
        users=users,
        cache=cache,
        recommender=gemini,
        outbox=outbox,
        dead_letters=planner.dead_letters,
        zone=zone,
        concurrency=4,
        clock=lambda: NOON,
    )
    counter = BatchCounter(
        batches=reco.recommendation_batches,
        counted=reco.recommendation_batch_users,
        users=users,
        outbox=outbox,
        stall_after=reco.settings.recommendations_stall_after,
        retention=reco.settings.state_retention_days * 86400,
        clock=lambda: NOON,
    )
    reco.recommendations.bind(Recommendations(planner=planner, advisor=advisor, counter=counter, gemini=None))
    return SimpleNamespace(
        users=users, cache=cache, gemini=gemini, advisor=advisor, **{k: t.send for k, t in topics.items()}
    )


def sent_values(mock: AsyncMock) -> list:
    return [call.kwargs["value"] for call in mock.await_args_list]


async def test_generate_task_becomes_a_manual_trigger_and_others_are_ignored(wired):
    async with reco.accept_daily_task.test_context() as agent:
        await agent.put(b'{"type": "generate_recommendations"}', key=b"k")
        await agent.put(b'{"type": "something_else"}', key=b"k")
        await agent.put(b"not json", key=b"k")
    assert [t.reason for t in sent_values(wired.triggers)] == ["manual"]
    [letter] = sent_values(wired.dead_letters)
    assert letter.reason.startswith("not JSON") and letter.payload == "not json"


async def test_manual_trigger_fans_out_one_request_per_active_user(wired):
    async with reco.plan_recommendation_batch.test_context() as agent:
        await agent.put(BatchTrigger(reason="manual").dumps(), key="daily")
    [started] = sent_values(wired.progress)
    assert (started.kind, started.total, started.day, started.trigger) == ("started", 3, "2026-11-25", "manual")
    requests = wired.requests.await_args_list
    assert [(c.kwargs["key"], c.kwargs["value"].user_id) for c in requests] == [("1", 1), ("2", 2), ("3", 3)]
    assert {c.kwargs["value"].batch_id for c in requests} == {started.batch_id}


async def test_a_daily_task_delivered_again_starts_no_second_batch(wired):
    trigger = BatchTrigger(reason="manual", source="daily-tasks:0:41")
    async with reco.plan_recommendation_batch.test_context() as agent:
        await agent.put(trigger.dumps(), key="daily")
        await agent.put(trigger.dumps(), key="daily")  # redelivered after a crash
        await agent.put(BatchTrigger(reason="manual", source="daily-tasks:0:42").dumps(), key="daily")  # a new task
    assert [p.kind for p in sent_values(wired.progress)] == ["started", "started"]


async def test_first_tick_only_initialises_the_schedule_and_a_missed_fire_catches_up(wired):
    async with reco.plan_recommendation_batch.test_context() as agent:
        await agent.put(BatchTrigger(reason="tick").dumps(), key="daily")
        assert wired.progress.await_count == 0
        assert reco.recommendation_runs["schedule"]["batch_id"] is None
        reco.recommendation_runs.data["schedule"] = {"last_fire": 0.0, "batch_id": None}  # a day was missed
        await agent.put(BatchTrigger(reason="tick").dumps(), key="daily")
        await agent.put(BatchTrigger(reason="tick").dumps(), key="daily")  # and it runs once
    [started] = sent_values(wired.progress)
    assert started.trigger == "catch-up"
    assert reco.recommendation_runs["schedule"]["batch_id"] == started.batch_id


async def test_per_user_outcomes(wired):
    wired.gemini.failures.append(RecommendationFailed("model output invalid", usage=TokenUsage(300, 90, 390)))
    requests = [RecommendationRequest(batch_id="b", user_id=u, day="2026-11-25") for u in (1, 2, 9)]
    async with reco.recommend_for_user.test_context() as agent:
        for request in requests:
            await agent.put(request.dumps(), key=str(request.user_id))
        await wired.advisor.in_flight.join()
    events = sent_values(wired.progress)
    by_user = {e.user_id: e.kind for e in events}
    assert sorted(by_user.values()) == ["failed", "skipped", "succeeded"]
    assert by_user[9] == "skipped"  # no orders in the window
    assert len(wired.cache.entries) == 1
    assert all("no onions" in p for p in wired.gemini.prompts)
    # Tokens go with the outcome: the unusable answer's too (billed), none without an answer.
    tokens = {e.kind: (e.prompt_tokens, e.output_tokens, e.total_tokens) for e in events}
    assert tokens == {"succeeded": (300, 40, 340), "failed": (300, 90, 390), "skipped": (None, None, None)}


async def test_exhausted_keys_stop_the_batch_and_skip_the_rest_without_calls(wired):
    wired.gemini.failures.append(AllKeysExhausted("every key disabled"))
    wired.advisor.in_flight = KeyedPool(1)  # one after another: the first user meets the exhausted keys
    async with reco.recommend_for_user.test_context() as agent:
        for user in (1, 2, 3):
            await agent.put(RecommendationRequest(batch_id="b", user_id=user, day="2026-11-25").dumps(), key=str(user))
        await wired.advisor.in_flight.join()
    kinds = [e.kind for e in sent_values(wired.progress)]
    assert kinds == ["stopped", "skipped", "skipped", "skipped"]
    assert len(wired.gemini.prompts) == 1


async def test_counter_counts_each_user_once_and_finishes(wired):
    events = [
        BatchProgress(batch_id="b", kind="started", at=1.0, total=2, day="2026-11-25", trigger="manual"),
        BatchProgress(batch_id="b", kind="succeeded", at=2.0, user_id=1),
        BatchProgress(batch_id="b", kind="skipped", at=3.0, user_id=1),  # a redelivered request
        BatchProgress(batch_id="b", kind="succeeded", at=4.0, user_id=2),
    ]
    async with reco.count_batch_progress.test_context() as agent:
        for event in events:
            await agent.put(event.dumps(), key="b")
    counts = BatchCounts.from_dict(reco.recommendation_batches["b"])
    assert (counts.succeeded, counts.skipped, counts.status, counts.finished_at) == (2, 0, BatchStatus.FINISHED, 4.0)
    assert list(reco.recommendation_batch_users.keys()) == []  # forgotten once the batch finished


async def test_counter_sums_tokens_even_of_a_user_counted_already(wired):
    tokens = {"prompt_tokens": 300, "output_tokens": 40, "total_tokens": 340}
    events = [
        BatchProgress(batch_id="b", kind="started", at=1.0, total=2, day="2026-11-25", trigger="manual"),
        BatchProgress(batch_id="b", kind="succeeded", at=2.0, user_id=1, **tokens),
        BatchProgress(batch_id="b", kind="succeeded", at=3.0, user_id=1, **tokens),  # asked twice: billed twice
        BatchProgress(batch_id="b", kind="failed", at=4.0, user_id=2),
    ]
    async with reco.count_batch_progress.test_context() as agent:
        for event in events:
            await agent.put(event.dumps(), key="b")
    counts = BatchCounts.from_dict(reco.recommendation_batches["b"])
    assert (counts.succeeded, counts.failed, counts.status) == (1, 1, BatchStatus.FINISHED)
    assert (counts.prompt_tokens, counts.output_tokens, counts.total_tokens) == (600, 80, 680)


async def test_a_stalled_batch_gets_its_missing_users_resent_then_is_abandoned(wired):
    quiet = reco.settings.recommendations_stall_after + 1
    stalled = BatchCounts(
        "b",
        day="2026-11-25",
        trigger="manual",
        total=3,
        succeeded=1,
        started_at=NOON - 2 * quiet,
        updated_at=NOON - quiet,
    )
    reco.recommendation_batches.data["b"] = stalled.to_dict()
    reco.recommendation_batch_users.data["b:2"] = "succeeded"
    sweep = BatchProgress(batch_id="sweep", kind="sweep", at=0.0)
    async with reco.count_batch_progress.test_context() as agent:
        await agent.put(sweep.dumps(), key="sweep")
        assert sorted(v.user_id for v in sent_values(wired.requests)) == [1, 3]
        counts = BatchCounts.from_dict(reco.recommendation_batches["b"])
        assert counts.resent == 1 and counts.updated_at == NOON  # the counter folds its own resend
        reco.recommendation_batches.data["b"] = {**stalled.to_dict(), "resent": 3}
        await agent.put(sweep.dumps(), key="sweep")
    counts = BatchCounts.from_dict(reco.recommendation_batches["b"])
    assert (counts.failed, counts.status, counts.finished_at) == (2, BatchStatus.FINISHED, NOON)
    assert counts.stopped_reason == "users never reported after resends"
    assert list(reco.recommendation_batch_users.keys()) == []


async def test_the_periodic_check_triggers_the_planner_and_sweeps_the_counter(wired, monkeypatch):
    sends = {name: AsyncMock() for name in ("triggers", "progress")}
    monkeypatch.setattr(reco.batch_triggers_topic, "send", sends["triggers"])
    monkeypatch.setattr(reco.batch_progress_topic, "send", sends["progress"])
    await reco.send_periodic_check()
    assert sent_values(sends["triggers"])[0].reason == "tick"
    assert sent_values(sends["progress"])[0].kind == "sweep"


async def test_batches_finished_longer_than_the_retention_ago_are_dropped(wired):
    retention = reco.settings.state_retention_days * 86400
    old = BatchCounts("old", day="2026-11-01", total=1, succeeded=1, started_at=1.0, finished_at=NOON - retention - 1)
    recent = BatchCounts("recent", day="2026-11-24", total=1, succeeded=1, started_at=1.0, finished_at=NOON - 86400)
    for counts in (old, recent):
        reco.recommendation_batches.data[counts.batch_id] = counts.to_dict()
    sweep = BatchProgress(batch_id="sweep", kind="sweep", at=0.0)
    async with reco.count_batch_progress.test_context() as agent:
        await agent.put(sweep.dumps(), key="sweep")
    assert sorted(reco.recommendation_batches.keys()) == ["recent"]
