"""The wiring: the only module that knows the capabilities. Autodiscovered by ``streams.app``.

At import it registers what Faust needs declared before the worker runs: the
capabilities' agents, tables and views (by importing their modules), their metric
collectors, and the rebalance guards. When the worker starts, ``Wiring`` (a
dependency of the app, so it starts before any agent consumes) creates the topics,
opens the connections and builds every service complete, with each port it needs,
then binds them to the capabilities' handles. It closes the connections after the
agents have stopped.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from mode import Service
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import text

import agents.console.views
import agents.notifications.views
import agents.recommendations.views  # noqa: F401 - registers the views
from agents.console.service import Console, console
from agents.console.sources import CafeNames
from agents.notifications.agent import Notifications, digest_deliveries, notifications
from agents.notifications.budget_policy import BudgetLimits
from agents.notifications.i18n import digest_format_from
from agents.notifications.metrics import notification_metrics
from agents.notifications.notifier import DigestNotifier
from agents.notifications.queries import DigestStore
from agents.notifications.shared_budget import SharedBudget
from agents.notifications.telegram import SEND_MESSAGE, TelegramClient
from agents.notifications.telegram_errors import TelegramUnauthorized
from agents.notifications.throttle import TelegramRateLimits, Throttle, waking_on_stop
from agents.recommendations.advisor import NoGeminiKeys, UserAdvisor
from agents.recommendations.agent import (
    Recommendations,
    recommendation_batch_users,
    recommendation_batches,
    recommendation_runs,
    recommendations,
)
from agents.recommendations.batch_health import batch_health_metrics
from agents.recommendations.cache import RecommendationCache
from agents.recommendations.counter import BatchCounter
from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.metrics import recommendation_metrics
from agents.recommendations.outbox import BatchOutbox
from agents.recommendations.planner import BatchPlanner
from agents.recommendations.ports import Recommender
from agents.recommendations.selection import UserSelection
from models.database import Database
from models.db import make_engine
from streams.app import app, settings, web_guard
from streams.commit_flush import install as install_commit_flush
from streams.dead_letters import DeadLetterSink
from streams.health import install as install_health
from streams.health import worker_health
from streams.kafka_admin import ensure_topics
from streams.kafka_security import KafkaAccessDenied, KafkaSecurity, check_kafka_access, kafka_options
from streams.metrics import (
    collectors,
    configuration_metrics,
    dead_letter_metrics,
    health_metrics,
    stall_watch_metrics,
)
from streams.probes import KafkaProbe
from streams.rebalance import install as install_rebalance_guards
from streams.redaction import bot_id_of
from streams.redis_connection import redis_client
from streams.settings import Settings
from streams.topics import (
    batch_progress_topic,
    batch_triggers_topic,
    dead_letters_topic,
    deadline_passed_topic,
    digest_retries_topic,
    recommendation_requests_topic,
    topic_specs,
)

__all__ = ["Wiring", "wiring"]

log = logging.getLogger(__name__)

#: Database connections beyond the digests and users in flight: the batch planner or stall sweep, the probe.
DATABASE_SPARE_CONNECTIONS = 2
#: The console's own (SQLAlchemy) connections.
CONSOLE_CONNECTIONS = 2
#: The exit status of a worker that Kafka did not let in (see ``streams.kafka_security``).
EXIT_KAFKA_DENIED = 3
#: The readiness probe's statement.
SELECT_ONE = text("SELECT 1")


class UnconfiguredTelegram:
    """Stands in for the client when ``TELEGRAM_BOT_TOKEN`` is not set: every send is rejected."""

    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int:
        raise TelegramUnauthorized(SEND_MESSAGE, None, "TELEGRAM_BOT_TOKEN is not set")


class Wiring(Service):
    """Opens the connections at worker start, builds the capabilities' services, closes them at stop."""

    def __init__(self, config: Settings, **kwargs: object) -> None:
        self.config = config
        self._open = AsyncExitStack()
        self.dead_letter_sinks: list[DeadLetterSink] = []
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        config = self.config
        log.info("kafka: connecting with %s", KafkaSecurity.of(config).describe())
        try:
            await check_kafka_access(config)
        except KafkaAccessDenied as exc:
            log.critical("%s", exc)
            raise SystemExit(EXIT_KAFKA_DENIED) from None
        await ensure_topics(kafka_options(config), topic_specs(), replication=config.topic_replication)
        # One connection per digest and per user in flight, plus the planner or stall sweep and the probe.
        pool_size = config.digest_concurrency + config.recommendation_concurrency + DATABASE_SPARE_CONNECTIONS
        database = await Database.open(config.database_url, size=pool_size)
        self._open.push_async_callback(database.close)
        # The console's reads, on SQLAlchemy (an operator's page: not a hot path).
        engine = make_engine(config.database_url, pool_size=CONSOLE_CONNECTIONS, autocommit=True)
        redis = redis_client(config, socket_timeout=5, socket_connect_timeout=5)
        self._open.push_async_callback(engine.dispose)
        self._open.push_async_callback(redis.aclose)
        kafka = KafkaProbe(kafka_options(config))
        self._open.push_async_callback(kafka.close)
        dependencies = worker_health().dependencies
        dependencies.register("kafka", kafka)
        dependencies.register("postgres", lambda: database.fetch(SELECT_ONE))
        dependencies.register("redis", redis.ping)
        # Failed web sign-ins counted for the whole fleet; short timeouts: a slow Redis must not hold a page up.
        web_redis = redis_client(config, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        self._open.push_async_callback(web_redis.aclose)
        web_guard.failures.use(web_redis)
        notified, recommended = self._notifications(database), self._recommendations(database, redis)
        notifications.bind(notified)
        recommendations.bind(recommended)
        console.bind(
            Console(
                settings=config,
                deliveries=digest_deliveries,
                batches=recommendation_batches,
                cafes=CafeNames(engine),
                budget=notified.budget,
                gemini=recommended.gemini,
            )
        )

    def _dead_letters(self) -> DeadLetterSink:
        """A capability's own dead-letter sink (``/metrics`` exports the malformed events of all of them)."""
        sink = DeadLetterSink(dead_letters_topic, max_payload=self.config.dead_letter_max_payload)
        self.dead_letter_sinks.append(sink)
        return sink

    def _notifications(self, database: Database) -> Notifications:
        config = self.config
        telegram: TelegramClient | None = None
        budget: SharedBudget | None = None
        if config.telegram_bot_token:
            bot_id = bot_id_of(config.telegram_bot_token)
            # Its own connection with short timeouts and no retries: a slow Redis must not hold sends up.
            budget_redis = redis_client(
                config, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
            fallback = TelegramRateLimits(
                global_per_second=config.telegram_fallback_rate,
                group_per_minute=config.telegram_group_per_minute,
                chat_interval=config.telegram_chat_interval,
            )
            limits = BudgetLimits(
                global_per_second=config.telegram_global_rate,
                chat_interval=config.telegram_chat_interval,
                group_per_minute=config.telegram_group_per_minute,
                max_pause=config.telegram_max_retry_after,
            )
            # Waits for a slot or a 429's pause end when the worker stops: the digest is deferred, not held.
            sleep = waking_on_stop(app.sleep, lambda: app.should_stop)
            budget = SharedBudget(
                budget_redis,
                bot_id=bot_id,
                limits=limits,
                fallback=Throttle(fallback, sleep=sleep),
                gather=config.digest_concurrency,  # the sends in flight at once: one booking round trip for them
                sleep=sleep,
            )
            telegram = TelegramClient(
                token=config.telegram_bot_token,
                base_url=config.telegram_api_base_url,
                timeout=config.telegram_timeout,
                throttle=budget,
                max_retry_after=config.telegram_max_retry_after,
            )
            self._open.push_async_callback(budget_redis.aclose)
            self._open.push_async_callback(budget.close)
            self._open.push_async_callback(telegram.close)
            log.info(
                "telegram: sending as bot id %s, at most %g messages/s shared by every worker of the bot (Redis)",
                bot_id,
                config.telegram_global_rate,
            )
        else:
            log.error("TELEGRAM_BOT_TOKEN is not set: digests will be dead-lettered, not sent")
        notifier = DigestNotifier(
            table=digest_deliveries,
            config=config,
            source=DigestStore(database, gather=config.digest_concurrency),
            sender=telegram or UnconfiguredTelegram(),
            retries=digest_retries_topic,
            rekey=deadline_passed_topic,
            dead_letters=self._dead_letters(),
            digest_format=digest_format_from(config.digest_language, config.digest_currency),
            # Retries wait no longer than the worker runs (app.sleep ends when it stops), for partitions it holds.
            sleep=app.sleep,
            stopping=lambda: app.should_stop,
            assigned=lambda tp: tp in app.consumer.assignment(),
        )
        self._open.push_async_callback(notifier.close)
        return Notifications(notifier=notifier, telegram=telegram, budget=budget)

    def _recommendations(self, database: Database, redis: Redis) -> Recommendations:
        config = self.config
        gemini: GeminiRecommender | None = None
        recommender: Recommender = NoGeminiKeys()
        if config.gemini_api_keys:
            gemini = GeminiRecommender(
                api_keys=config.gemini_api_keys,
                base_url=config.gemini_api_base_url,
                model=config.gemini_model,
                redis=redis,  # key states shared by all workers
                key_rpm=config.gemini_key_rpm,
            )
            recommender = gemini
            self._open.push_async_callback(gemini.close)
            log.info("gemini: %r", gemini)
        else:
            log.error("GEMINI_API_KEYS is not set: recommendation batches will stop at their first user")
        users = UserSelection(database)
        dead_letters = self._dead_letters()
        outbox = BatchOutbox(requests=recommendation_requests_topic, progress=batch_progress_topic)
        planner = BatchPlanner(
            runs=recommendation_runs,
            users=users,
            outbox=outbox,
            triggers=batch_triggers_topic,
            dead_letters=dead_letters,
            cron=config.recommendations_cron,
            zone=config.zone,
        )
        advisor = UserAdvisor(
            users=users,
            cache=RecommendationCache(redis, config.zone),
            recommender=recommender,
            outbox=outbox,
            dead_letters=dead_letters,
            zone=config.zone,
            concurrency=config.recommendation_concurrency,
        )
        counter = BatchCounter(
            batches=recommendation_batches,
            counted=recommendation_batch_users,
            users=users,
            outbox=outbox,
            stall_after=config.recommendations_stall_after,
            retention=config.state_retention_days * 86400,
        )
        return Recommendations(planner=planner, advisor=advisor, counter=counter, gemini=gemini)

    async def on_stop(self) -> None:
        await self._open.aclose()


wiring = Wiring(settings)
app.add_dependency(wiring)
stall_watch = install_rebalance_guards(app, stall_after=settings.stream_stall_after)
install_commit_flush(app)
collectors.register(lambda: notification_metrics(notifications()))
collectors.register(lambda: recommendation_metrics(recommendations().gemini, recommendation_batches))
collectors.register(lambda: batch_health_metrics(recommendation_batches.values()))
collectors.register(lambda: stall_watch_metrics(stall_watch))
health = install_health(app, stall_watch, rebalance_limit=settings.liveness_rebalance_limit)
collectors.register(lambda: health_metrics(health))
collectors.register(lambda: configuration_metrics(settings))
collectors.register(lambda: dead_letter_metrics(wiring.dead_letter_sinks))
