"""All configuration, read from the environment in one place and checked when read.

Each field is declared once: its variable is its name in upper case (``digest_concurrency`` is
``DIGEST_CONCURRENCY``), and its type, default and bounds are the field's. A blank variable means the
default. Secrets (the bot token, Gemini keys, the console's token, the Kafka password) and the URLs that
may carry a password can also be given as ``X_FILE``: the path of a file holding the value (the way Docker
and Kubernetes hand secrets over). Secrets stay out of ``repr``, ``str`` and every error message; a URL's
password is shown as ``***``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import list_currencies
from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ConfigurationError", "Settings", "load_settings", "redact_url"]

#: The shortest ``OPS_TOKEN`` accepted: 32 characters (e.g. ``openssl rand -hex 16``) are out of reach of guessing.
OPS_TOKEN_MIN_LENGTH = 32
#: The suffix of a variable naming the file that holds a value: ``OPS_TOKEN_FILE=/run/secrets/ops-token``.
FILE_SUFFIX = "_FILE"


def _http_base(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


def _keys(value: object) -> object:
    return tuple(k.strip() for k in value.split(",") if k.strip()) if isinstance(value, str) else value


def _hosts(value: object) -> object:
    return tuple(h.lower() for h in _keys(value)) if isinstance(value, str) else value


def _readable_file(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise ValueError("must be the path of a readable file")
    return value


def _long_enough(value: str) -> str:
    if len(value) < OPS_TOKEN_MIN_LENGTH:
        raise ValueError(f"must be at least {OPS_TOKEN_MIN_LENGTH} characters (e.g. openssl rand -hex 24)")
    return value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe to log and show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(unparsable URL, not shown)"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _check_tls_files(ca_file: str | None, cert_file: str | None, key_file: str | None) -> None:
    """Load the PEM files as TLS will, so a wrong file is a configuration error, not a crash later."""
    context = ssl.create_default_context()
    try:
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError:
        raise ValueError("KAFKA_SSL_CA_FILE is not a PEM certificate") from None
    try:
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError:
        raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE are not a PEM certificate and its key") from None


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _no_whitespace(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValueError("must contain no whitespace")
    return value


def _crontab(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError("must be a crontab (minute hour day month weekday, e.g. '0 6 * * *')")
    return value


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("must be an IANA time zone (e.g. 'Europe/Moscow')") from None
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _currency(value: str) -> str:
    code = value.upper()
    if code and code not in list_currencies():
        raise ValueError("must be empty or an ISO 4217 currency code (e.g. 'RUB', 'USD')")
    return code


Secret = Annotated[str, AfterValidator(_no_whitespace)]
ReadableFile = Annotated[str, AfterValidator(_readable_file)]
HttpBase = Annotated[str, AfterValidator(_http_base)]
AtLeastOne = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class Settings(BaseSettings):
    """The worker's configuration; ``Settings()`` is the defaults, ``Settings.from_env()`` the environment's."""

    model_config = SettingsConfigDict(
        frozen=True, str_strip_whitespace=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    kafka_broker_url: str = "kafka://127.0.0.1:9092"
    # Kafka security, for every client the worker makes (streams.kafka_security).
    kafka_security_protocol: Annotated[
        Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(_upper)
    ] = "PLAINTEXT"
    kafka_sasl_mechanism: Annotated[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], BeforeValidator(_upper)] = (
        "SCRAM-SHA-512"
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    # The CA that signed the brokers' certificates (empty: the system's CAs); the host name is always verified.
    kafka_ssl_ca_file: ReadableFile | None = None
    # This worker's certificate and key, for brokers that require mutual TLS.
    kafka_ssl_cert_file: ReadableFile | None = None
    kafka_ssl_key_file: ReadableFile | None = None
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lunch"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The CA of a `rediss://` server (empty: the system's CAs).
    redis_ssl_ca_file: ReadableFile | None = None
    telegram_bot_token: Secret | None = Field(default=None, repr=False)
    telegram_api_base_url: HttpBase = "https://api.telegram.org"
    gemini_api_keys: Annotated[tuple[Secret, ...], BeforeValidator(_keys)] = Field(default=(), repr=False)
    gemini_api_base_url: HttpBase = "https://generativelanguage.googleapis.com"
    gemini_model: str = "gemini-2.5-flash-lite"
    recommendations_cron: Annotated[str, AfterValidator(_crontab)] = "0 6 * * *"
    timezone: Annotated[str, AfterValidator(_zone_name)] = "UTC"
    web_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    web_bind: str = "127.0.0.1"
    # The host other workers call this one at (Faust's web_host); empty: WEB_BIND, or the host name when WEB_BIND
    # is a wildcard address (0.0.0.0, ::).
    web_advertised_host: str = ""
    # `Host` headers the web server answers (empty: the advertised host, localhost and 127.0.0.1).
    web_allowed_hosts: Annotated[tuple[str, ...], BeforeValidator(_hosts)] = ()
    # The operator's token: every page but the probes and metrics needs it; unset, those pages are off.
    ops_token: Annotated[Secret, AfterValidator(_long_enough)] | None = Field(default=None, repr=False)
    app_id: str = "lunch-streams"
    topic_prefix: str = ""
    # Partitions of every topic we create; must equal those of `deadline-passed`
    # (our tables are co-partitioned with it).
    topic_partitions: AtLeastOne = 8
    topic_replication: AtLeastOne = 1
    # Telegram throttle (Bot API limits: ~30 msg/s per bot, 20 msg/min per group, 1 msg/s per chat),
    # shared through Redis by every worker that sends as one bot: the global rate is the bot's total.
    telegram_global_rate: Positive = 28.0
    # Messages per second one worker sends at most while Redis (the shared budget) is unreachable.
    telegram_fallback_rate: Positive = 3.0
    telegram_group_per_minute: AtLeastOne = 20
    telegram_chat_interval: NonNegative = 1.0
    telegram_timeout: Positive = 10.0
    # A digest part whose throttle slot is further away than this is left for a retry.
    telegram_max_wait: NonNegative = 5.0
    # The longest `retry_after` (seconds) taken from the Bot API; a longer one is clamped to it.
    telegram_max_retry_after: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    notify_max_attempts: AtLeastOne = 8
    # The dates a deadline event may name, in days before and after today (TIMEZONE); others are dead letters.
    event_date_days_back: Annotated[int, Field(ge=0, le=30)] = 7
    event_date_days_ahead: Annotated[int, Field(ge=0, le=30)] = 2
    # Bytes of a bad event's value a dead letter keeps (a longer one is truncated, with its size and SHA-256).
    dead_letter_max_payload: Annotated[int, Field(ge=256, le=262144)] = 65536
    # Days a cafe's delivery state, or a finished recommendation batch, is kept after it was last touched.
    state_retention_days: Annotated[int, Field(ge=1, le=366)] = 14
    # Hours after its first attempt a digest still waiting (rate limits, outages) is given up on.
    digest_give_up_after: Positive = 6.0
    # Cafes whose digests one worker prepares and sends at the same time (one event per cafe at a time).
    digest_concurrency: AtLeastOne = 8
    notify_backoff_base: Positive = 2.0
    notify_backoff_max: Positive = 300.0
    broker_session_timeout: Positive = 10.0
    # A partition with records below its end that no stream handler has touched for this long is sought back.
    stream_stall_after: Positive = 30.0
    # Requests per minute each Gemini key is paced to, shared by all workers (0: not paced).
    gemini_key_rpm: NonNegative = 0.0
    # Prices per million input and output tokens, for the batches' estimated cost (both 0: no cost shown).
    gemini_price_input_per_m: NonNegative = 0.0
    gemini_price_output_per_m: NonNegative = 0.0
    # Language of the digest's labels and ISO 4217 currency of its prices (empty: bare numbers).
    digest_language: Annotated[Literal["en", "ru"], BeforeValidator(_lower)] = "en"
    digest_currency: Annotated[str, AfterValidator(_currency)] = ""
    # Users whose recommendations one worker makes at the same time.
    recommendation_concurrency: AtLeastOne = 8
    # How often the leader checks for a missed daily batch (seconds).
    recommendations_check_interval: Positive = 60.0
    # A running batch that hears from none of its users for this long gets its missing requests sent again.
    recommendations_stall_after: Positive = 300.0
    # Kafka group membership: `static` (KIP-345: a worker back within the session timeout keeps its partitions,
    # no rebalance) under WORKER_INSTANCE_ID (empty: the host name), or `dynamic`.
    group_membership: Annotated[Literal["static", "dynamic"], BeforeValidator(_lower)] = "static"
    worker_instance_id: str = ""
    # A rebalance or table recovery lasting longer than this (seconds) fails /livez.
    liveness_rebalance_limit: Positive = 600.0
    # `text` (Faust's lines) or `json` (one object per line, for log pipelines).
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = "text"

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set for {protocol}")
        tls_files = [f for f in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file") if getattr(self, f)]
        if tls_files and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{tls_files[0].upper()} needs KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL, not {protocol}")
        if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS)")
        _check_tls_files(self.kafka_ssl_ca_file, self.kafka_ssl_cert_file, self.kafka_ssl_key_file)
        if self.redis_ssl_ca_file and not self.redis_url.startswith("rediss://"):
            raise ValueError("REDIS_SSL_CA_FILE needs a rediss:// REDIS_URL")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in _URLS and isinstance(value, str) else value

    @property
    def advertised_host(self) -> str:
        """The host other workers reach this one at (``WEB_ADVERTISED_HOST``, else see its comment)."""
        if self.web_advertised_host:
            return self.web_advertised_host
        return socket.gethostname() if _is_wildcard(self.web_bind) else self.web_bind

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The ``Host`` names (without port) the web server answers."""
        return frozenset(self.web_allowed_hosts or (self.advertised_host.lower(), "localhost", "127.0.0.1"))

    @property
    def zone(self) -> ZoneInfo:
        """``TIMEZONE`` as a time zone."""
        return ZoneInfo(self.timezone)

    @property
    def group_instance_id(self) -> str | None:
        """This worker's static member id (``WORKER_INSTANCE_ID``, else ``{host name}:{WEB_PORT}``); None when dynamic.

        Two workers on one host serve different web ports, so the default never puts two under one id, and Faust
        needs a member to keep its host and web port across restarts anyway (its address rides in the assignment).
        """
        if self.group_membership == "dynamic":
            return None
        return self.worker_instance_id or f"{socket.gethostname()}:{self.web_port}"

    def topic(self, name: str) -> str:
        """A topic's full name, with ``TOPIC_PREFIX`` in front."""
        return f"{self.topic_prefix}{name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the arguments: the environment is read by :meth:`from_env` alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``env`` (default: ``os.environ``); raises ``ConfigurationError`` on a bad value."""
        raw = _Variables(cls, os.environ if env is None else env)()
        try:
            return cls(**raw)
        except ValidationError as exc:
            raise ConfigurationError(_problems(exc, raw, cls)) from None


#: The fields whose value may hold a password inside a URL: shown redacted, and may come from a file.
_URLS = frozenset({"kafka_broker_url", "database_url", "redis_url"})


def _from_file(field_name: str, field: FieldInfo) -> bool:
    """A secret (kept out of ``repr``) or a URL that may carry a password can be given as ``X_FILE``."""
    return not field.repr or field_name in _URLS


class _Variables(PydanticBaseSettingsSource):
    """Each field's variable (its name in upper case) from a mapping, stripped; blank ones are left out.

    A secret or URL field also reads ``X_FILE``, the path of a file holding its value (one trailing line end
    dropped); giving both ``X`` and ``X_FILE``, or a file that cannot be read, is a configuration error.
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._env = env
        self.problems: list[str] = []

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = field_name.upper()
        value = self._env.get(name, "").strip() or None
        path = self._env.get(name + FILE_SUFFIX, "").strip() if _from_file(field_name, field) else ""
        if path and value is not None:
            self.problems.append(f"{name} and {name}{FILE_SUFFIX} are both set: give one")
        elif path:
            try:
                with open(path, encoding="utf-8") as file:
                    value = file.read().strip() or None
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                self.problems.append(f"{name}{FILE_SUFFIX} cannot be read ({reason}), got {path!r}")
        return value, name, False

    def __call__(self) -> dict[str, Any]:
        values = {name: self.get_field_value(f, name)[0] for name, f in self.settings_cls.model_fields.items()}
        if self.problems:
            raise ConfigurationError(self.problems)
        return {name: value for name, value in values.items() if value is not None}


class ConfigurationError(ValueError):
    """Invalid settings: ``problems`` holds one line per bad variable, with no secret in any."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


_REASONS = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "must be an integer",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "literal_error": "must be {expected}",
}


def _reason(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    if error["type"] == "value_error":
        return str(ctx["error"])
    template = _REASONS.get(error["type"])
    return template.format(**ctx) if template else f"is invalid ({error['msg']})"


def _problems(exc: ValidationError, raw: Mapping[str, Any], settings_cls: type[BaseSettings]) -> list[str]:
    """One line per bad variable: its name, what it must be, and the value given unless it is a secret."""
    secrets = {name for name, field in settings_cls.model_fields.items() if not field.repr}
    lines: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in lines:
            continue
        if not field:  # a rule across fields: its message names them
            lines[field] = _reason(error)
            continue
        line = f"{field.upper()} {_reason(error)}"
        if field in secrets:
            lines[field] = f"{line} (value not shown)"
        else:
            shown = raw.get(field)
            if field in _URLS and isinstance(shown, str):
                shown = redact_url(shown)
            lines[field] = f"{line}, got {shown!r}"
    return list(lines.values())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """:meth:`Settings.from_env`, or one line per bad variable on stderr and exit status 2."""
    try:
        return Settings.from_env(env)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"lunch-streams: invalid configuration: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
