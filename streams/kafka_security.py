"""How every Kafka client of the worker connects: one place for TLS and SASL, and a start-up check.

``kafka_options(settings)`` is what each aiokafka client takes (the admin client, the probe, the publisher,
the dead-letter replay and reader, the console's readers); ``faust_credentials(settings)`` the same for the
Faust app. TLS verifies the broker's certificate and host name against ``KAFKA_SSL_CA_FILE`` (else the
system's CAs); mutual TLS adds ``KAFKA_SSL_CERT_FILE`` and ``KAFKA_SSL_KEY_FILE``.

aiokafka turns a wrong password and an untrusted certificate alike into ``Unable to bootstrap`` and retries;
:func:`check_kafka_access` opens one connection the way the clients will and says which it was, so a bad
credential stops the worker at once with one line (:class:`KafkaAccessDenied`), without the password.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.kafka_admin import bootstrap_servers
from streams.settings import Settings

__all__ = [
    "KafkaAccessDenied",
    "KafkaSecurity",
    "SecurityProtocol",
    "check_kafka_access",
    "faust_credentials",
    "kafka_options",
]

#: How long the start-up check waits for one broker's answer.
CHECK_TIMEOUT = 15.0


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class KafkaAccessDenied(RuntimeError):
    """No broker let this worker in (credentials, certificate, listener): one line, no secret."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The security part of ``Settings``; the password stays out of ``repr``."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> KafkaSecurity:
        return cls(
            protocol=SecurityProtocol(settings.kafka_security_protocol),
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ca_file=settings.kafka_ssl_ca_file,
            cert_file=settings.kafka_ssl_cert_file,
            key_file=settings.kafka_ssl_key_file,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (certificate and host name verified), or None without TLS."""
        return _ssl_context(self.ca_file, self.cert_file, self.key_file) if self.protocol.tls else None

    def client_options(self) -> dict[str, Any]:
        """aiokafka's keyword arguments for this security."""
        options: dict[str, Any] = {"security_protocol": self.protocol.value, "ssl_context": self.ssl_context()}
        if self.protocol.sasl:
            options |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return options

    def describe(self) -> str:
        """What a log line may say about the security: protocol, mechanism, user; never the password."""
        parts = [self.protocol.value]
        if self.protocol.sasl:
            parts.append(f"{self.mechanism} as {self.username!r}")
        if self.protocol.tls:
            parts.append(f"CA {self.ca_file}" if self.ca_file else "system CAs")
            if self.cert_file:
                parts.append(f"client certificate {self.cert_file}")
        return ", ".join(parts)


@functools.cache
def _ssl_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def kafka_options(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments for any aiokafka client of ``settings``."""
    return {"bootstrap_servers": bootstrap_servers(settings.kafka_broker_url)} | KafkaSecurity.of(
        settings
    ).client_options()


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's ``broker_credentials`` for ``settings`` (None: PLAINTEXT)."""
    security = KafkaSecurity.of(settings)
    context = security.ssl_context()
    if security.protocol.sasl:
        return faust.SASLCredentials(
            username=security.username, password=security.password, mechanism=security.mechanism, ssl_context=context
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _denial(exc: BaseException, security: KafkaSecurity, server: str) -> str | None:
    """The one line saying why ``server`` refused us (or we it), or None when it is not a credential problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"kafka: the certificate of {server} is not trusted ({getattr(exc, 'verify_message', None) or exc}; "
            f"KAFKA_SSL_CA_FILE={security.ca_file or '(system CAs)'})"
        )
    if isinstance(exc, SaslAuthenticationFailed):
        who = f"{security.mechanism} login of {security.username!r}"
        return f"kafka: {server} refused the SASL {who} (wrong user name or password)"
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"kafka: {server} does not accept SASL mechanism {security.mechanism} (KAFKA_SASL_MECHANISM)"
    if isinstance(exc, KafkaConnectionError) and security.protocol.tls and security.cert_file:
        # TLS 1.3: a server that rejects the client's certificate says so after the handshake, by closing.
        return (
            f"kafka: {server} closed the connection after the TLS handshake: it does not accept this worker's "
            f"client certificate (KAFKA_SSL_CERT_FILE={security.cert_file})"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"kafka: the TLS handshake with {server} failed ({getattr(exc, 'reason', None) or type(exc).__name__}): "
            f"is its listener {security.protocol.value}?"
        )
    return None


async def check_kafka_access(settings: Settings, *, timeout: float = CHECK_TIMEOUT) -> None:
    """Log in to a bootstrap server as every client will; raise :class:`KafkaAccessDenied` if none lets us in.

    The first refusal (credentials, certificate) ends the check; an unreachable server passes to the next.
    """
    security = KafkaSecurity.of(settings)
    options = security.client_options()
    servers = bootstrap_servers(settings.kafka_broker_url)
    failures: list[str] = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **options)
        except (OSError, KafkaError, TimeoutError) as exc:
            line = _denial(exc, security, server)
            if line is not None:
                raise KafkaAccessDenied(line) from None
            failures.append(f"{server}: {type(exc).__name__}")
            continue
        conn.close()
        return
    raise KafkaAccessDenied(
        f"kafka: no bootstrap server answered over {security.protocol.value} ({'; '.join(failures)}): "
        "are KAFKA_BROKER_URL and KAFKA_SECURITY_PROTOCOL those of the listener?"
    )
