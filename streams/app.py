"""The Faust application: ``faust -A streams.app worker -l info``.

Configured only by the environment (see ``streams.settings``). No I/O happens at
import: connections open when the worker starts (``streams.worker``, the wiring).
"""

from __future__ import annotations

import gc

import faust

from streams.kafka_security import faust_credentials
from streams.logs import logging_config
from streams.settings import load_settings
from streams.web_router import guarded_router
from streams.web_security import WebGuard

__all__ = ["app", "main", "settings", "web_guard"]

settings = load_settings()
#: Nothing but the probes and metrics without OPS_TOKEN (see streams.web_security).
web_guard = WebGuard.of(settings)

app = faust.App(
    settings.app_id,
    broker=settings.kafka_broker_url,
    broker_credentials=faust_credentials(settings),
    autodiscover=("streams.worker", "streams.commands", "streams.web", "streams.metrics"),
    origin="streams",
    store="memory://",
    timezone=settings.zone,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=settings.broker_session_timeout,
    broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
    consumer_group_instance_id=settings.group_instance_id,  # static membership (None: dynamic)
    producer_acks=-1,
    # Records (table changelogs above all) wait up to 5 ms to leave in one produce request with the others:
    # less CPU per record in a burst (bench/README, row 7), nothing a digest or a commit would notice.
    producer_linger=0.005,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host=settings.advertised_host,  # what other workers are told to call, not the bind address
    # Faust's own pages are off: Prometheus has the stats; app.table_route needs only the in-process router.
    web_stats_enabled=False,
    web_router_enabled=False,
    web_tables_enabled=False,
    web_graph_enabled=False,
    web_application_options={"middlewares": [web_guard]},
    Router=guarded_router(web_guard),  # app.table_route forwards with the fleet's token
    logging_config=logging_config(settings.log_format),
)


@app.task
async def freeze_start_up_heap() -> None:
    """Exempt what start-up made (modules, the app, the wiring) from the cyclic garbage collector.

    Runs once the worker has started (tables recovered). The worker's heap is mostly long-lived
    start-up objects; without this every full collection walks all of them again (~45 ms each,
    several in a burst of digests). Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def main() -> None:
    """The ``lunch-streams`` console script: the Faust CLI bound to this app."""
    app.main()
