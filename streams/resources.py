"""Connections the agents share, opened when the worker starts and closed when it stops.

``Resources`` is a child service of the app, added before the app's own children,
so it starts before the agents consume anything and stops after them.
"""

from __future__ import annotations

import logging

from mode import Service
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.notifications.agent import notifier
from agents.notifications.queries import DigestStore
from agents.notifications.shared_budget import BudgetLimits, SharedBudget
from agents.notifications.telegram import SEND_MESSAGE, TelegramClient, TelegramUnauthorized
from agents.notifications.throttle import TelegramRateLimits, Throttle
from agents.recommendations.agent import recommendations
from agents.recommendations.cache import RecommendationCache
from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.selection import UserSelection
from models.db import make_engine
from streams.app import app, settings
from streams.kafka_admin import ensure_topics
from streams.producers import bootstrap_servers
from streams.settings import Settings, bot_id_of
from streams.topics import topic_specs

__all__ = ["Resources", "resources"]

log = logging.getLogger(__name__)


class UnconfiguredTelegram:
    """Stands in for the client when ``TELEGRAM_BOT_TOKEN`` is not set: every send is rejected."""

    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int:
        raise TelegramUnauthorized(SEND_MESSAGE, None, "TELEGRAM_BOT_TOKEN is not set")


class Resources(Service):
    """The database engine, Redis, the Telegram and Gemini clients, handed to the agents' domain objects."""

    def __init__(self, config: Settings, **kwargs: object) -> None:
        self.config = config
        self.engine: AsyncEngine | None = None
        self.telegram: TelegramClient | None = None
        self.redis: Redis | None = None
        self.gemini: GeminiRecommender | None = None
        self.budget: SharedBudget | None = None
        self.budget_redis: Redis | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        config = self.config
        await ensure_topics(
            bootstrap_servers(config.kafka_broker_url), topic_specs(), replication=config.topic_replication
        )
        self.engine = make_engine(config.database_url)
        notifier.source = DigestStore(self.engine)
        self.redis = Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=5)
        recommendations.users = UserSelection(self.engine)
        recommendations.cache = RecommendationCache(self.redis, config.zone)
        if config.gemini_api_keys:
            self.gemini = GeminiRecommender(
                api_keys=config.gemini_api_keys,
                base_url=config.gemini_api_base_url,
                model=config.gemini_model,
                redis=self.redis,  # key states shared by all workers
                key_rpm=config.gemini_key_rpm,
            )
            recommendations.recommender = self.gemini
            log.info("gemini: %r", self.gemini)
        else:
            log.error("GEMINI_API_KEYS is not set: recommendation batches will stop at their first user")
        if config.telegram_bot_token:
            # Its own connection with short timeouts and no retries: a slow Redis must not hold sends up.
            self.budget_redis = Redis.from_url(
                config.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
            limits = BudgetLimits(
                global_per_second=config.telegram_global_rate,
                chat_interval=config.telegram_chat_interval,
                group_per_minute=config.telegram_group_per_minute,
            )
            fallback = TelegramRateLimits(
                global_per_second=config.telegram_fallback_rate,
                group_per_minute=config.telegram_group_per_minute,
                chat_interval=config.telegram_chat_interval,
            )
            bot_id = bot_id_of(config.telegram_bot_token)
            self.budget = SharedBudget(self.budget_redis, bot_id=bot_id, limits=limits, fallback=Throttle(fallback))
            self.telegram = TelegramClient(
                token=config.telegram_bot_token,
                base_url=config.telegram_api_base_url,
                timeout=config.telegram_timeout,
                throttle=self.budget,
            )
            notifier.sender = self.telegram
            log.info(
                "telegram: sending as bot id %s, at most %g messages/s shared by every worker of the bot (Redis)",
                bot_id,
                config.telegram_global_rate,
            )
        else:
            notifier.sender = UnconfiguredTelegram()
            log.error("TELEGRAM_BOT_TOKEN is not set: digests will be dead-lettered, not sent")

    async def on_stop(self) -> None:
        if self.telegram is not None:
            await self.telegram.close()
        if self.gemini is not None:
            await self.gemini.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.budget_redis is not None:
            await self.budget_redis.aclose()
        if self.engine is not None:
            await self.engine.dispose()


resources = Resources(settings)
app.add_dependency(resources)
