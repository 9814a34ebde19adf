"""Deadline notifications end to end: plain-JSON events → real worker → PostgreSQL → fake Telegram."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

import pytest

from sandbox.telegram import Reply
from streams.producers import EventPublisher
from tests.integration.harness import eventually
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)
_chats = iter(range(-4_000_001, -5_000_000, -1))


def new_chat() -> int:
    return next(_chats)


@pytest.fixture
async def publish(worker_settings):
    async with EventPublisher(worker_settings) as publisher:
        yield publisher


def to_chat(telegram, chat_id):
    return [m for m in telegram.messages if m.chat_id == chat_id]


def delivered_to(telegram, chat_id):
    return [m for m in to_chat(telegram, chat_id) if m.delivered]


async def cafe_with_orders(factory, *, orders: int = 2, chat_id: int | None = None, **cafe_kwargs):
    cafe = await factory.cafe(cafe_kwargs.pop("name", "Cafe Bon"), chat_id=chat_id or new_chat(), **cafe_kwargs)
    combo = await factory.combo(cafe, "Business lunch", "450.00")
    soup = await factory.item(cafe, "Borscht", "soup")
    for i in range(orders):
        await factory.order(await factory.user(f"Person {i}"), combo, DAY, items=(soup,))
    return cafe


async def wait_log(worker, text: str, timeout: float = 20.0) -> None:
    await eventually(lambda: text in worker.logs(), timeout=timeout)


async def test_orders_produce_one_html_digest_with_every_field(worker, telegram, factory, publish):
    cafe = await factory.cafe("Trattoria <Roma> & Co", chat_id=new_chat())
    business = await factory.combo(cafe, "Business lunch", "450.00")
    light = await factory.combo(cafe, "Light", "320.55")
    soup, salad = await factory.item(cafe, "Borscht", "a-soup"), await factory.item(cafe, "Caesar", "b-salad")
    alice, bob = await factory.user("Alice <admin>"), await factory.user("Bob")
    await factory.order(alice, business, DAY, items=(soup, salad), notes="no onions & no <b>garlic</b>")
    await factory.order(bob, light, DAY, items=(salad,))
    await factory.order(bob, light, DAY, status="cancelled", notes="CANCELLED ONE")

    await publish.deadline_passed(cafe.id, DAY)
    [message] = await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))

    assert message.parse_mode == "HTML"
    assert message.params["chat_id"] == cafe.tg_chat_id
    text = message.text
    assert text.startswith(
        f"<b>Orders for Trattoria &lt;Roma&gt; &amp; Co</b>\nDate: {DAY:%A, %B} {DAY.day}, {DAY.year} · 2 orders\n\n"
        # the preparation summary: combos then items, most ordered first; the cancelled order counts nowhere
        "<b>To prepare</b>\nBusiness lunch \u00d7 1\nLight \u00d7 1\nCaesar \u00d7 2\nBorscht \u00d7 1\n\n1. <b>"
    )
    assert "<b>Alice &lt;admin&gt;</b>" in text and "<b>Bob</b>" in text
    assert "Business lunch — 450.00" in text and "Light — 320.55" in text
    assert "Items: Borscht, Caesar" in text
    assert "no onions &amp; no &lt;b&gt;garlic&lt;/b&gt;" in text
    assert "CANCELLED ONE" not in text
    assert text.endswith("<b>Total: 770.55</b>")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no_orders", "nothing sent (no orders)"),
        ("only_cancelled", "nothing sent (no orders)"),
        ("no_chat", "nothing sent (cafe has no chat id)"),
        ("disabled", "nothing sent (notifications disabled)"),
    ],
)
async def test_nothing_is_sent_when_there_is_nothing_to_send(worker, telegram, factory, publish, setup, reason):
    chat = new_chat()
    if setup == "no_chat":
        cafe = await cafe_with_orders(factory, name="Chatless")
        await factory_set_chat_none(factory, cafe.id)
    elif setup == "disabled":
        cafe = await cafe_with_orders(factory, chat_id=chat, enabled=False)
    else:
        cafe = await factory.cafe("Quiet Cafe", chat_id=chat)
        if setup == "only_cancelled":
            combo = await factory.combo(cafe)
            await factory.order(await factory.user(), combo, DAY, status="cancelled")
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY} attempt=1: {reason}")
    assert to_chat(telegram, chat) == []
    if setup == "no_chat":
        assert not any("Chatless" in m.text for m in telegram.messages)


async def factory_set_chat_none(factory, cafe_id: int) -> None:
    from sqlalchemy import update

    from models.db import Cafe

    async with factory.engine.begin() as conn:
        await conn.execute(update(Cafe).where(Cafe.id == cafe_id).values(tg_chat_id=None))


async def test_unknown_cafe_is_logged_and_the_agent_goes_on(worker, telegram, factory, publish):
    await publish.deadline_passed(99_999_999, DAY)
    await wait_log(worker, f"digest cafe=99999999 date={DAY} attempt=1: nothing sent (cafe not found)")
    cafe = await cafe_with_orders(factory)
    await publish.deadline_passed(cafe.id, DAY)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))


async def test_many_orders_from_many_users_are_all_listed_in_order_with_exact_total(worker, telegram, factory, publish):
    cafe = await factory.cafe("Canteen", chat_id=new_chat())
    combo = await factory.combo(cafe, "Soup of the day", "0.10")
    for i in range(30):
        await factory.order(await factory.user(f"Worker {i:02}"), combo, DAY, price=f"{100 + i}.33")
    await publish.deadline_passed(cafe.id, DAY)
    [message] = await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))
    positions = [message.text.index(f"<b>Worker {i:02}</b>") for i in range(30)]
    assert positions == sorted(positions)
    expected_total = sum(100 + i for i in range(30)) + 0.33 * 30
    assert message.text.endswith(f"<b>Total: {expected_total:.2f}</b>")


async def test_rate_limit_429_waits_retry_after_then_succeeds(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    telegram.script(cafe.tg_chat_id, Reply.retry_after(2))
    await publish.deadline_passed(cafe.id, DAY)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), timeout=30)
    first, second = to_chat(telegram, cafe.tg_chat_id)
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 2.0
    assert second.text == first.text


@pytest.mark.parametrize("reply", [Reply.chat_not_found(), Reply.kicked()], ids=["400", "403"])
async def test_client_errors_are_not_retried_and_are_dead_lettered(
    worker, worker_settings, telegram, factory, publish, reply
):
    cafe = await cafe_with_orders(factory)
    telegram.script(cafe.tg_chat_id, reply)
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY} attempt=1: delivery failed")
    letters = await read_topic(worker_settings.kafka_broker_url, worker_settings.topic("dead-letters"))
    mine = [v for k, v in letters if k == str(cafe.id)]
    assert len(mine) == 1
    assert json.loads(mine[0]["payload"]) == {"cafe_id": cafe.id, "date": DAY.isoformat()}
    assert f"HTTP {reply.status}" in mine[0]["reason"]
    await asyncio.sleep(1.0)  # a retry, if any, would come within the 1 s backoff cap
    assert len(to_chat(telegram, cafe.tg_chat_id)) == 1


async def test_server_errors_are_retried_with_backoff_then_delivered(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    telegram.script(cafe.tg_chat_id, Reply.server_error(502), Reply.server_error(500))
    await publish.deadline_passed(cafe.id, DAY)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), timeout=30)
    assert [m.status for m in to_chat(telegram, cafe.tg_chat_id)] == [502, 500, 200]


async def test_server_errors_give_up_after_the_last_attempt(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    telegram.script(cafe.tg_chat_id, *[Reply.server_error(503)] * 5)
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY} attempt=3: delivery failed: gave up after 3")
    assert [m.status for m in to_chat(telegram, cafe.tg_chat_id)] == [503, 503, 503]


async def test_group_migrated_to_supergroup_resends_and_persists_the_new_id(worker, telegram, factory, publish):
    old_chat, new_chat_id = new_chat(), -1_009_000_000_000 + new_chat()
    cafe = await cafe_with_orders(factory, chat_id=old_chat)
    telegram.script(old_chat, Reply.migrated(new_chat_id))
    await publish.deadline_passed(cafe.id, DAY)
    [message] = await eventually(lambda: delivered_to(telegram, new_chat_id))
    assert "Cafe Bon" in message.text
    assert [m.status for m in to_chat(telegram, old_chat)] == [400]
    assert await factory.chat_id_of(cafe.id) == new_chat_id


async def test_long_digest_is_split_into_labelled_parts_within_limits(worker, telegram, factory, publish):
    cafe = await factory.cafe("Big Office", chat_id=new_chat())
    combo = await factory.combo(cafe)
    for i in range(40):
        await factory.order(await factory.user(f"Colleague {i}"), combo, DAY, notes="a long note " * 25)
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY} attempt=1: sent to chat")
    parts = delivered_to(telegram, cafe.tg_chat_id)
    assert len(parts) >= 2
    for i, part in enumerate(parts, start=1):
        assert f"(part {i}/{len(parts)})" in part.text
    assert all(m.status == 200 for m in to_chat(telegram, cafe.tg_chat_id))  # no 429 from the fake
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(parts)]
    assert min(gaps) >= 0.9  # one message per second per chat


async def test_duplicate_event_sends_one_digest(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    await publish.deadline_passed(cafe.id, DAY)
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY}: already handled, duplicate event ignored")
    assert len(to_chat(telegram, cafe.tg_chat_id)) == 1


async def test_malformed_events_are_dead_lettered_and_the_agent_keeps_running(
    worker, worker_settings, telegram, factory, publish
):
    bad = [b"not json", b'{"cafe_id": "seven", "date": "2026-11-25"}', b'{"date": "2026-11-25"}', b"\xff\xfe"]
    for value in bad:
        await publish.send_raw("deadline-passed", value, key=b"7")
    cafe = await cafe_with_orders(factory)
    await publish.deadline_passed(cafe.id, DAY)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))
    letters = await read_topic(worker_settings.kafka_broker_url, worker_settings.topic("dead-letters"))
    reasons = {v["payload"]: v["reason"] for _, v in letters if v["source_topic"].endswith("deadline-passed")}
    assert reasons["not json"].startswith("not JSON")
    assert "'cafe_id' must be an integer" in reasons['{"cafe_id": "seven", "date": "2026-11-25"}']
    assert "missing field 'cafe_id'" in reasons['{"date": "2026-11-25"}']
    assert reasons["base64://4="].startswith("not JSON")
    assert "malformed event" in worker.logs()


async def test_event_with_a_wrong_key_is_rekeyed_and_delivered_once(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    await publish.send_json("deadline-passed", {"cafe_id": cafe.id, "date": DAY.isoformat()}, key=None)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))
    assert len(to_chat(telegram, cafe.tg_chat_id)) == 1


async def test_a_restarted_worker_does_not_send_a_digest_again(worker, telegram, factory, publish):
    cafe = await cafe_with_orders(factory)
    await publish.deadline_passed(cafe.id, DAY)
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id))
    worker.stop()
    worker.start()
    await publish.deadline_passed(cafe.id, DAY)
    await wait_log(worker, f"digest cafe={cafe.id} date={DAY}: already handled, duplicate event ignored", 30)
    assert len(to_chat(telegram, cafe.tg_chat_id)) == 1


async def test_steady_load_stays_under_telegram_limits(worker, telegram, factory, publish):
    """40 cafes at once against a fake that answers 429 above 30 msg/s: the throttle keeps it at zero."""
    cafes = [await cafe_with_orders(factory, orders=1) for _ in range(40)]
    for cafe in cafes:
        await publish.deadline_passed(cafe.id, DAY)
    chats = {cafe.tg_chat_id for cafe in cafes}
    await eventually(lambda: {m.chat_id for m in telegram.messages if m.delivered} >= chats, timeout=30)
    ours = [m for m in telegram.messages if m.chat_id in chats]
    assert [m.status for m in ours] == [200] * 40
