"""The notification agents under Faust's ``test_context`` with fake ports (no Kafka, no HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from agents.notifications import agent as notifications
from agents.notifications.agent import Notifications
from agents.notifications.delivery import MAX_RATE_LIMITS_IN_PLACE
from agents.notifications.digest import CafeDigest, OrderLine
from agents.notifications.i18n import DEFAULT_FORMAT
from agents.notifications.notifier import DigestNotifier
from agents.notifications.telegram_errors import TelegramForbidden, TelegramRetryAfter, TelegramServerError
from models.records import DigestRetry
from streams.dead_letters import DeadLetterSink
from tests.unit.fakes import FakeTopic, delivered

DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)


class FakeStore:
    def __init__(self, digests: dict[int, CafeDigest]) -> None:
        self.digests = digests
        self.loads = 0

    async def load_digest(self, cafe_id: int, order_date: date) -> CafeDigest | None:
        self.loads += 1
        return self.digests.get(cafe_id)

    async def move_chat(self, cafe_id: int, old_chat_id: int, new_chat_id: int) -> bool:
        return True


class FakeSender:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[int, str]] = []

    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((chat_id, text))
        return len(self.sent)


def make_digest(cafe_id: int = 5, chat_id: int | None = -77) -> CafeDigest:
    line = OrderLine(1, "Alice", "Business", ("Soup",), None, Decimal("450.00"))
    return CafeDigest(cafe_id, "Cafe", chat_id, True, DAY, (line,))


def build(store: FakeStore, sender: FakeSender, **config: object) -> DigestNotifier:
    """The service as the wiring builds it, with fake ports and recorded topic sends."""
    return DigestNotifier(
        table=notifications.digest_deliveries,
        config=notifications.settings.model_copy(update=config),
        source=store,
        sender=sender,
        retries=FakeTopic("digest-retries"),
        rekey=FakeTopic("deadline-passed"),
        dead_letters=DeadLetterSink(FakeTopic("dead-letters")),
        digest_format=DEFAULT_FORMAT,
    )


def bind(notifier: DigestNotifier) -> DigestNotifier:
    notifications.notifications.bind(Notifications(notifier=notifier, telegram=None, budget=None))
    return notifier


@pytest.fixture
async def wired(monkeypatch):
    """The real app and agents over a notifier with fake ports; tables reset."""
    app = notifications.app
    app.finalize()
    app.flow_control.resume()
    notifications.digest_deliveries.data.clear()
    changelog: list[tuple[int, str, dict]] = []

    def send_changelog(partition, key, value, *args, **kwargs):
        changelog.append((partition, key, value))
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    monkeypatch.setattr(notifications.digest_deliveries, "send_changelog", send_changelog)
    store = FakeStore({5: make_digest()})
    sender = FakeSender()
    notifier = bind(build(store, sender))
    return SimpleNamespace(
        notifier=notifier,
        store=store,
        sender=sender,
        retries=notifier.retries,
        dead_letters=notifier.dead_letters.topic,
        changelog=changelog,
    )


def event(cafe_id: object = 5, day: str = DAY.isoformat()) -> bytes:
    return json.dumps({"cafe_id": cafe_id, "date": day}).encode()


def state(cafe_id: int = 5) -> dict:
    return notifications.digest_deliveries[str(cafe_id)][DAY.isoformat()]


async def test_digest_is_sent_and_recorded_once(wired):
    store, sender, retries, dead_letters = wired.store, wired.sender, wired.retries, wired.dead_letters
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await agent.put(event(), key=b"5")  # delivered twice
        await wired.notifier.in_flight.join()
    assert [chat for chat, _ in sender.sent] == [-77]
    assert store.loads == 1
    assert state()["status"] == "sent" and state()["attempts"] == 1
    retries.send.assert_not_awaited()
    dead_letters.send.assert_not_awaited()
    [(partition, key, value)] = wired.changelog  # the state reached the changelog, in the event's partition
    assert (partition, key, value[DAY.isoformat()]["status"]) == (0, "5", "sent")


async def test_malformed_event_goes_to_dead_letters_and_the_agent_goes_on(wired):
    sender, dead_letters = wired.sender, wired.dead_letters
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(b"{oops", key=b"5")
        await agent.put(event(cafe_id="five"), key=b"5")
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    reasons = [call.kwargs["value"].reason for call in dead_letters.send.await_args_list]
    assert reasons[0].startswith("not JSON")
    assert "'cafe_id' must be an integer" in reasons[1]
    assert len(sender.sent) == 1


def rate_limited(retry_after: float, times: int = MAX_RATE_LIMITS_IN_PLACE + 1) -> list[Exception]:
    return [TelegramRetryAfter("sendMessage", 429, "Too Many Requests", retry_after=retry_after)] * times


async def test_a_429_is_sent_again_in_place_without_using_an_attempt(wired):
    sender, retries = wired.sender, wired.retries
    sender.failures.extend(rate_limited(0, times=MAX_RATE_LIMITS_IN_PLACE))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    assert [chat for chat, _ in sender.sent] == [-77]
    retries.send.assert_not_awaited()
    assert state()["status"] == "sent" and state()["attempts"] == 1


async def test_rate_limited_digest_is_deferred_to_the_retry_topic_with_its_state(wired):
    sender, retries = wired.sender, wired.retries
    sender.failures.extend(rate_limited(7))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    retry: DigestRetry = retries.send.await_args.kwargs["value"]
    assert retries.send.await_args.kwargs["key"] == "5"
    # Flow control: the same attempt continues later.
    # It names the attempt only: the retry renders the digest from the database again.
    assert (retry.cafe_id, retry.date, retry.attempt, retry.replay) == (5, DAY.isoformat(), 1, False)
    assert set(retry.asdict()) == {"cafe_id", "date", "attempt", "not_before", "replay", "first_attempt_at"}
    saved = state()
    assert saved["status"] == "retrying" and saved["attempts"] == 1
    assert saved["next_attempt_at"] == retry.not_before
    assert saved["first_attempt_at"] == retry.first_attempt_at <= saved["updated_at"]
    assert saved["next_attempt_at"] - saved["updated_at"] >= 7
    assert "429" in saved["last_error"]
    assert wired.notifier.counts["deferred"] == 1


async def test_retry_agent_renders_the_digest_again_and_marks_it_sent(wired):
    sender, retries = wired.sender, wired.retries
    sender.failures.extend(rate_limited(0))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    retry: DigestRetry = retries.send.await_args.kwargs["value"]
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(retry.dumps(), key=b"5")
        await agent.put(retry.dumps(), key=b"5")  # a duplicate retry record is stale
        await wired.notifier.join()
    assert wired.store.loads == 2 and len(sender.sent) == 1 and "Alice" in sender.sent[0][1]
    assert state()["status"] == "sent" and state()["attempts"] == 1


async def test_a_storm_of_429s_never_dead_letters_a_digest(wired, monkeypatch):
    sender, retries, dead_letters = wired.sender, wired.retries, wired.dead_letters
    wired.notifier.config = notifications.settings.model_copy(update={"notify_max_attempts": 2})
    sender.failures.extend(rate_limited(0))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    for _ in range(10):  # ten more rounds of deferral, far past NOTIFY_MAX_ATTEMPTS
        sender.failures.extend(rate_limited(0))
        async with notifications.retry_digest.test_context() as agent:
            await agent.put(retries.send.await_args.kwargs["value"].dumps(), key=b"5")
            await wired.notifier.join()
    assert retries.send.await_count == 11
    dead_letters.send.assert_not_awaited()
    assert state()["status"] == "retrying" and state()["attempts"] == 1
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(retries.send.await_args.kwargs["value"].dumps(), key=b"5")
        await wired.notifier.join()
    assert state()["status"] == "sent" and len(sender.sent) == 1


async def test_a_digest_is_given_up_on_after_digest_give_up_after(wired, monkeypatch):
    sender, retries, dead_letters = wired.sender, wired.retries, wired.dead_letters
    clock = SimpleNamespace(now=time.time())
    monkeypatch.setattr(wired.notifier, "clock", lambda: clock.now)
    sender.failures.extend(rate_limited(60))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    retry = retries.send.await_args.kwargs["value"]
    clock.now += notifications.settings.digest_give_up_after * 3600 - 30  # the next wait would pass the bound
    sender.failures.extend(rate_limited(60))
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(retry.dumps(), key=b"5")
        await wired.notifier.join()
    assert retries.send.await_count == 1
    letter = dead_letters.send.await_args.kwargs["value"]
    assert letter.reason.startswith("gave up after 6.0 h: ") and "429" in letter.reason
    assert state()["status"] == "failed"


async def test_failures_use_up_attempts_and_end_in_a_dead_letter(wired, monkeypatch):
    sender, retries, dead_letters = wired.sender, wired.retries, wired.dead_letters
    wired.notifier.config = notifications.settings.model_copy(update={"notify_max_attempts": 2})
    clock = SimpleNamespace(now=time.time())
    monkeypatch.setattr(wired.notifier, "clock", lambda: clock.now)
    sender.failures.extend([TelegramServerError("sendMessage", 502, "Bad Gateway")] * 2)
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    retry = retries.send.await_args.kwargs["value"]
    assert retry.attempt == 2
    clock.now = retry.not_before  # due now: no waiting out the backoff
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(retry.dumps(), key=b"5")
        await wired.notifier.join()
    letter = dead_letters.send.await_args.kwargs["value"]
    assert letter.reason.startswith("gave up after 2 attempts: ") and "502" in letter.reason
    assert state()["status"] == "failed" and state()["attempts"] == 2


async def test_forbidden_is_not_retried_and_is_dead_lettered(wired):
    sender, retries, dead_letters = wired.sender, wired.retries, wired.dead_letters
    sender.failures.append(TelegramForbidden("sendMessage", 403, "Forbidden: bot was kicked"))
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        await wired.notifier.in_flight.join()
    retries.send.assert_not_awaited()
    letter = dead_letters.send.await_args.kwargs["value"]
    assert json.loads(letter.payload) == {"cafe_id": 5, "date": DAY.isoformat()}
    assert state()["status"] == "failed"


async def test_event_under_the_wrong_key_is_rekeyed(wired, monkeypatch):
    sender = wired.sender
    rekey = wired.notifier.rekey
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"not-the-cafe")
        await wired.notifier.in_flight.join()
    assert rekey.send.await_args.kwargs["key"] == b"5"
    assert sender.sent == []


class GatedSender(FakeSender):
    """Lets no digest through until ``expected`` of them are being sent at the same time."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected, self.arrived, self.all_in = expected, 0, asyncio.Event()

    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int:
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 2)
        return await super().send_message(chat_id, text, max_wait=max_wait)


async def test_several_cafes_are_handled_at_the_same_time(wired, monkeypatch):
    wired.store.digests.update({6: make_digest(6, -66), 7: make_digest(7, -55)})
    sender = GatedSender(expected=3)
    monkeypatch.setattr(wired.notifier, "sender", sender)
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        for cafe_id in (5, 6, 7):
            await agent.put(event(cafe_id), key=str(cafe_id).encode())
        await wired.notifier.in_flight.join()
    assert sorted(chat for chat, _ in sender.sent) == [-77, -66, -55]
    wired.dead_letters.send.assert_not_awaited()


async def test_a_date_outside_the_window_is_a_dead_letter_and_sends_nothing(wired):
    far = DAY.replace(year=DAY.year + 1).isoformat()
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(day=far), key=b"5")
        await wired.notifier.in_flight.join()
    assert wired.sender.sent == []
    letter = wired.dead_letters.send.await_args.kwargs["value"]
    assert letter.reason.startswith(f"date {far} outside the accepted window ")
    assert wired.notifier.dead_letters.malformed["deadline-passed"] == 1


async def test_many_future_dates_cannot_push_today_out_of_the_duplicate_check(wired):
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        await agent.put(event(), key=b"5")
        for days in range(1, 15):  # fourteen later dates: all but two outside the window
            later = DAY.toordinal() + days
            await agent.put(event(day=type(DAY).fromordinal(later).isoformat()), key=b"5")
        await agent.put(event(), key=b"5")  # today's deadline delivered again
        await wired.notifier.in_flight.join()
    assert len(wired.sender.sent) == 3  # today, +1 and +2; the twelve dates past the window were dead letters
    assert wired.notifier.counts["duplicates"] == 1
    assert DAY.isoformat() in notifications.digest_deliveries["5"]


async def test_a_retry_due_far_ahead_does_not_hold_up_the_one_behind_it(wired):
    now = time.time()
    later = DigestRetry(cafe_id=5, date=DAY.isoformat(), attempt=1, not_before=now + 600, replay=True)
    due = DigestRetry(cafe_id=5, date=DAY.isoformat(), attempt=1, not_before=now, replay=True)
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(later.dumps(), key=b"5")
        await agent.put(due.dumps(), key=b"5")
        await asyncio.wait_for(wired.notifier.in_flight.join(), 5)
        for _ in range(50):
            if wired.sender.sent:
                break
            await asyncio.sleep(0.02)
        assert [chat for chat, _ in wired.sender.sent] == [-77]  # the due one went, the later one still waits
        assert len(wired.notifier.waiting) == 1
        await wired.notifier.close()


async def test_a_retry_not_due_within_the_hold_is_published_again_and_acknowledged(wired):
    wired.notifier.waiting.hold_at_most = 0.05
    later = DigestRetry(cafe_id=5, date=DAY.isoformat(), attempt=1, not_before=time.time() + 600, replay=True)
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(later.dumps(), key=b"5")
        await wired.notifier.join()
    assert wired.notifier.waiting.requeued == 1 and wired.sender.sent == []
    requeued = wired.retries.send.await_args.kwargs
    assert requeued["key"] == b"5" and json.loads(requeued["value"])["not_before"] == later.not_before


async def test_a_stopping_worker_publishes_its_waiting_retries_again_at_once(wired, monkeypatch):
    monkeypatch.setattr(wired.notifier.waiting, "stopping", lambda: True)
    later = DigestRetry(cafe_id=5, date=DAY.isoformat(), attempt=1, not_before=time.time() + 3000, replay=True)
    started = time.monotonic()
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(later.dumps(), key=b"5")
        await wired.notifier.join()
    assert time.monotonic() - started < 1 and wired.notifier.waiting.requeued == 1


async def test_a_retry_naming_a_time_far_ahead_is_a_dead_letter(wired):
    forged = DigestRetry(cafe_id=5, date=DAY.isoformat(), attempt=1, not_before=time.time() + 365 * 86400)
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(forged.dumps(), key=b"5")
        await wired.notifier.join()
    letter = wired.dead_letters.send.await_args.kwargs["value"]
    assert "not_before more than" in letter.reason and wired.sender.sent == []


async def test_a_forged_retry_can_only_send_the_digest_the_database_holds_to_its_chat(wired):
    forged = json.dumps(
        {
            "cafe_id": 5,
            "date": DAY.isoformat(),
            "attempt": 1,
            "not_before": time.time(),
            "replay": True,
            "chat_id": -999,
            "parts": ['<a href="https://evil.example">pay here</a>'],
        }
    ).encode()
    async with notifications.retry_digest.test_context() as agent:
        await agent.put(forged, key=b"5")
        await wired.notifier.join()
    [(chat, text)] = wired.sender.sent
    assert chat == -77 and "Alice" in text and "evil" not in text


async def test_an_event_whose_dead_letter_is_not_written_is_not_acknowledged(wired, monkeypatch):
    monkeypatch.setattr(wired.notifier.dead_letters, "backoff", 0.0)
    wired.dead_letters.send.side_effect = ConnectionError("broker down")
    acked: list[object] = []

    async def ack(event: object) -> None:
        acked.append(event)

    raw = SimpleNamespace(
        key=b"5", value=b"not json", message=SimpleNamespace(topic="deadline-passed", partition=0, offset=3)
    )
    await wired.notifier.admit(raw, ack)
    await wired.notifier.in_flight.join()
    assert acked == [] and wired.notifier.dead_letters.count == 0
    assert wired.dead_letters.send.await_count == 3  # tried, then left for redelivery
    wired.dead_letters.send.side_effect = lambda *a, **k: delivered()
    await wired.notifier.admit(raw, ack)
    await wired.notifier.in_flight.join()
    assert acked == [raw] and wired.notifier.dead_letters.count == 1
