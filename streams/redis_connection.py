"""The worker's Redis connections, made one way: ``REDIS_URL`` (``rediss://`` for TLS) and its CA."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streams.settings import Settings

__all__ = ["redis_client"]


def redis_client(settings: Settings, **options: Any) -> Redis:
    """A client of ``REDIS_URL`` (user and password from the URL, as Redis ACLs want), verified against
    ``REDIS_SSL_CA_FILE`` over TLS; ``options`` are redis-py's (timeouts, retry)."""
    if settings.redis_ssl_ca_file:
        options["ssl_ca_certs"] = settings.redis_ssl_ca_file
    return Redis.from_url(settings.redis_url, **options)
