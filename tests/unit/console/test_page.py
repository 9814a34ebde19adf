"""The console's HTML: what a person reads, data always escaped, every form that acts carrying its CSRF token."""

from __future__ import annotations

from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from agents.console.model import batch_rows, digest_rows, status_counts, summarize_letters
from agents.console.page import ConsolePage, render_console
from agents.console.replay_page import render_refusal, render_replay
from agents.console.service import Replayed
from agents.recommendations.usage import TokenPrices
from streams.dead_letters import Replay, ReplayStep

HOSTILE = "<img src=x onerror=alert(1)>"
NOW = 1_795_000_000.0  # 2026-11-18


class Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def page(**overrides) -> str:
    states = {
        "12": {"status": "failed", "attempts": 1, "updated_at": NOW, "last_error": f"chat {HOSTILE} not found"},
        "5": {"status": "sent", "attempts": 1, "updated_at": NOW, "parts_sent": 1, "chat_id": -5},
        "6": {"status": "retrying", "attempts": 2, "updated_at": NOW, "next_attempt_at": NOW + 60, "last_error": "5xx"},
    }
    rows = digest_rows(states, {5: HOSTILE, 6: "Noodle Bar"})
    batches = [{"batch_id": "b1", "day": "2026-11-17", "trigger": "scheduled", "status": "finished", "total": 4,
                "succeeded": 3, "failed": 1, "started_at": NOW - 60, "finished_at": NOW - 30,
                "prompt_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}]  # fmt: skip
    letter = {"source_topic": "deadline-passed", "reason": f"kicked {HOSTILE}", "key": HOSTILE,
              "payload": '{"cafe_id": 12, "date": "2026-11-18"}', "failed_at": "2026-11-18T10:00:00"}  # fmt: skip
    fields = {
        "app_id": "lunch-streams",
        "worker": "http://127.0.0.1:6066",
        "now": NOW,
        "zone": ZoneInfo("UTC"),
        "day": "2026-11-18",
        "status": None,
        "query": HOSTILE,
        "digests": rows,
        "counts": status_counts(rows),
        "batches": batch_rows(batches, TokenPrices(0.10, 0.40)),
        "prices_known": True,
        "keys": {"source": "shared by all workers (Redis)", "keys": [
            {"fingerprint": "key-1a2b3c4d", "state": "cooling", "until": NOW + 30, "ok": 5, "rate_limited": 1,
             "errors": 0, "prompt_tokens": 1200, "output_tokens": 300}]},
        "budget": {"bot_id": "123", "mode": "shared", "global_rate": 28.0, "group_per_minute": 20, "chat_interval": 1.0,
                   "fallback_rate": 3.0, "shared": {"reachable": True, "booked_ahead": 2, "paused_for_s": 0.0},
                   "worker": {"waiting": 0, "waits": 4, "wait_seconds": 0.2, "deferred": 1}},
        "letters": summarize_letters([(0, 0, letter)], {}, prefix="", now=NOW),
        "csrf": "csrf-of-the-session",
        "notes": [],
    }  # fmt: skip
    return render_console(ConsolePage(**(fields | overrides)))


def test_hostile_data_shows_as_text_and_never_as_markup():
    html = page()
    assert HOSTILE not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4  # name, error, search box, letter reason and key
    assert not any(tag == "img" or "onerror" in attrs for tag, attrs in Tags(html).tags)


def test_what_a_person_reads():
    html = page()
    assert "Digests of 2026-11-18" in html
    assert "failed 1" in html and "sent 1" in html and "retrying 1" in html and "all 3" in html
    assert 'unknown cafe</span> <span class="muted">#12' in html  # not in the database: its id
    assert "next attempt 11:07:40" in html  # NOW + 60 s, in TIMEZONE
    assert 'style="width:100%"' in html and "4/4 (100%)" in html and "30 s" in html
    assert "3 / 1 / 0 / 0" in html and "1,200 in" in html
    assert "$0.0002" in html  # (1200 * 0.10 + 300 * 0.40) / 1e6
    assert "key-1a2b3c4d" in html and "cooling" in html
    assert "1 not replayed yet" in html and "1 of them replayable" in html
    assert "2 sends booked ahead, paused for 0.0 s" in html and "4 waits (0.2 s), 1 deferred" in html


def forms(html: str) -> list[tuple[str, set[tuple[str, str]]]]:
    """Each form's action and its hidden fields."""
    found: list[tuple[str, set[tuple[str, str]]]] = []
    for tag, attrs in Tags(html).tags:
        if tag == "form":
            found.append((attrs["action"], set()))
        elif tag == "input" and attrs.get("type") == "hidden" and found:
            found[-1][1].add((attrs["name"], attrs["value"]))
    return found


def test_every_form_that_acts_carries_the_csrf_token():
    acting = [(action, hidden) for action, hidden in forms(page()) if not action.startswith("/ops/#")]
    assert acting == [
        ("/signout/", {("csrf", "csrf-of-the-session")}),
        ("/ops/replay/", {("csrf", "csrf-of-the-session"), ("dry_run", "1")}),
    ]
    assert 'method="get" action="/ops/#digests"' in page()  # the filters change nothing: no token
    bearer = page(csrf=None)  # asked with a bearer token: no session to bind a token to, nothing to sign out of
    assert "/signout/" not in bearer and 'name="csrf"' not in bearer and "/ops/replay/" in bearer


def test_no_price_no_cost_but_a_hint():
    html = page(prices_known=False, batches=batch_rows([{"batch_id": "b", "total": 1}], TokenPrices()))
    assert "GEMINI_PRICE_INPUT_PER_M" in html and "$" not in html


def test_filters_keep_the_day_and_the_search():
    html = page(status="failed", query="bar")
    assert 'href="/ops/?day=2026-11-18&amp;q=bar&amp;status=failed#digests"' in html
    assert '<option value="failed" selected>' in html


def test_dry_run_offers_the_replay_form_and_the_result_has_none():
    steps = [
        ReplayStep(0, 3, {"source_topic": "deadline-passed", "key": "12", "reason": HOSTILE},
                   Replay("digest-retries", "12", b"{}")),
        ReplayStep(1, 0, {"source_topic": "deadline-passed", "key": "1", "reason": "not JSON"}, None),
    ]  # fmt: skip
    preview = render_replay(Replayed(True, {"replayed": 1, "unreplayable": 1}, steps), "the-csrf")
    assert "1 letter(s) would be replayed; 1 cannot be" in preview
    assert "would go to digest-retries key 12" in preview and "cannot be replayed" in preview
    assert forms(preview) == [("/signout/", {("csrf", "the-csrf")}), ("/ops/replay/", {("csrf", "the-csrf")})]
    assert 'type="password"' not in preview  # the session is the proof: no token typed again
    assert HOSTILE not in preview
    done = render_replay(Replayed(False, {"replayed": 1, "unreplayable": 1}, steps))
    assert "1 letter(s) replayed" in done and "<form" not in done and "sent to digest-retries" in done
    nothing = render_replay(Replayed(True, {"replayed": 0, "unreplayable": 0}, []))
    assert "Nothing to replay" in nothing and "<form" not in nothing


def test_refusal_says_why():
    assert "The replay failed (KafkaError)" in render_refusal("The replay failed (KafkaError); see the log.")
