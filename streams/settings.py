"""All configuration, read from the environment in one place.

Secrets (the bot token, Gemini keys) are kept out of ``repr`` so a logged or
displayed ``Settings`` never leaks them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

__all__ = ["Settings", "bot_id_of", "key_fingerprint"]

DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def bot_id_of(token: str | None) -> str:
    """The public bot id (the part of a token before ``:``), safe to log."""
    if not token:
        return "none"
    return token.split(":", 1)[0] if ":" in token else "?"


def key_fingerprint(key: str) -> str:
    """A short, non-reversible label of an API key, safe to log."""
    import hashlib

    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True, kw_only=True)
class Settings:
    kafka_broker_url: str = "kafka://127.0.0.1:9092"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lunch"
    redis_url: str = "redis://127.0.0.1:6379/0"
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_api_base_url: str = "https://api.telegram.org"
    gemini_api_keys: tuple[str, ...] = field(default=(), repr=False)
    gemini_api_base_url: str = DEFAULT_GEMINI_BASE_URL
    gemini_model: str = "gemini-2.5-flash-lite"
    recommendations_cron: str = "0 6 * * *"
    timezone: str = "UTC"
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    app_id: str = "lunch-streams"
    topic_prefix: str = ""
    # Partitions of every topic we create; must equal those of `deadline-passed`
    # (our tables are co-partitioned with it).
    topic_partitions: int = 8
    topic_replication: int = 1
    # Telegram throttle (Bot API limits: ~30 msg/s per bot, 20 msg/min per group, 1 msg/s per chat),
    # shared through Redis by every worker that sends as one bot: the global rate is the bot's total.
    telegram_global_rate: float = 25.0
    # Messages per second one worker sends at most while Redis (the shared budget) is unreachable.
    telegram_fallback_rate: float = 3.0
    telegram_group_per_minute: int = 20
    telegram_chat_interval: float = 1.0
    telegram_timeout: float = 10.0
    # A digest part whose throttle slot is further away than this is left for a retry.
    telegram_max_wait: float = 5.0
    notify_max_attempts: int = 8
    # Hours after its first attempt a digest still waiting (rate limits, outages) is given up on.
    digest_give_up_after: float = 6.0
    # Cafes whose digests one worker prepares and sends at the same time (one event per cafe at a time).
    digest_concurrency: int = 8
    notify_backoff_base: float = 2.0
    notify_backoff_max: float = 300.0
    broker_session_timeout: float = 10.0
    # A partition with records below its end that none of its agents has touched for this long is sought back.
    stream_stall_after: float = 30.0
    # Requests per minute each Gemini key is paced to, shared by all workers (0: not paced).
    gemini_key_rpm: float = 0.0
    # Language of the digest's labels (en, ru) and ISO 4217 currency of its prices (empty: bare numbers).
    digest_language: str = "en"
    digest_currency: str = ""
    # Users whose recommendations one worker makes at the same time.
    recommendation_concurrency: int = 8
    # How often the leader checks for a missed daily batch (seconds).
    recommendations_check_interval: float = 60.0
    # A running batch that hears from none of its users for this long gets its missing requests sent again.
    recommendations_stall_after: float = 300.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def topic(self, name: str) -> str:
        """A topic's full name, with ``TOPIC_PREFIX`` in front."""
        return f"{self.topic_prefix}{name}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        keys = tuple(k.strip() for k in env.get("GEMINI_API_KEYS", "").split(",") if k.strip())
        settings = cls(
            kafka_broker_url=text("KAFKA_BROKER_URL", d.kafka_broker_url),
            database_url=text("DATABASE_URL", d.database_url),
            redis_url=text("REDIS_URL", d.redis_url),
            telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN", "").strip() or None,
            telegram_api_base_url=text("TELEGRAM_API_BASE_URL", d.telegram_api_base_url).rstrip("/"),
            gemini_api_keys=keys,
            gemini_api_base_url=text("GEMINI_API_BASE_URL", d.gemini_api_base_url).rstrip("/"),
            gemini_model=text("GEMINI_MODEL", d.gemini_model),
            recommendations_cron=text("RECOMMENDATIONS_CRON", d.recommendations_cron),
            timezone=text("TIMEZONE", d.timezone),
            web_port=_int(env, "WEB_PORT", d.web_port),
            web_bind=text("WEB_BIND", d.web_bind),
            app_id=text("APP_ID", d.app_id),
            topic_prefix=env.get("TOPIC_PREFIX", "").strip(),
            topic_partitions=_int(env, "TOPIC_PARTITIONS", d.topic_partitions),
            topic_replication=_int(env, "TOPIC_REPLICATION", d.topic_replication),
            telegram_global_rate=_float(env, "TELEGRAM_GLOBAL_RATE", d.telegram_global_rate),
            telegram_fallback_rate=_float(env, "TELEGRAM_FALLBACK_RATE", d.telegram_fallback_rate),
            telegram_group_per_minute=_int(env, "TELEGRAM_GROUP_PER_MINUTE", d.telegram_group_per_minute),
            telegram_chat_interval=_float(env, "TELEGRAM_CHAT_INTERVAL", d.telegram_chat_interval),
            telegram_timeout=_float(env, "TELEGRAM_TIMEOUT", d.telegram_timeout),
            telegram_max_wait=_float(env, "TELEGRAM_MAX_WAIT", d.telegram_max_wait),
            notify_max_attempts=_int(env, "NOTIFY_MAX_ATTEMPTS", d.notify_max_attempts),
            digest_give_up_after=_float(env, "DIGEST_GIVE_UP_AFTER", d.digest_give_up_after),
            digest_concurrency=_int(env, "DIGEST_CONCURRENCY", d.digest_concurrency),
            notify_backoff_base=_float(env, "NOTIFY_BACKOFF_BASE", d.notify_backoff_base),
            notify_backoff_max=_float(env, "NOTIFY_BACKOFF_MAX", d.notify_backoff_max),
            broker_session_timeout=_float(env, "BROKER_SESSION_TIMEOUT", d.broker_session_timeout),
            stream_stall_after=_float(env, "STREAM_STALL_AFTER", d.stream_stall_after),
            gemini_key_rpm=_float(env, "GEMINI_KEY_RPM", d.gemini_key_rpm),
            digest_language=text("DIGEST_LANGUAGE", d.digest_language),
            digest_currency=env.get("DIGEST_CURRENCY", "").strip().upper(),
            recommendation_concurrency=_int(env, "RECOMMENDATION_CONCURRENCY", d.recommendation_concurrency),
            recommendations_check_interval=_float(
                env, "RECOMMENDATIONS_CHECK_INTERVAL", d.recommendations_check_interval
            ),
            recommendations_stall_after=_float(env, "RECOMMENDATIONS_STALL_AFTER", d.recommendations_stall_after),
        )
        settings.zone  # noqa: B018 - fail fast on an unknown TIMEZONE
        return settings
