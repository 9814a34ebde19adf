"""Settings: the README's variables and defaults, the bounds, blank values, secrets and the one-line exit."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.settings import ConfigurationError, Settings, load_settings, redact_url

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:secret-bot-token"
KEYS = ("secret-key-one", "secret-key-two")
OPS = "ops-secret-" + "0123456789abcdef" * 2
A_FILE = str(ROOT / "README.md")


def self_signed() -> tuple[str, str]:
    """A PEM certificate and its key, made once for this module (in a temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="lunch-settings-"))
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *(
                "-days",
                "1",
                "-subj",
                "/CN=settings-test",
                "-keyout",
                str(folder / "k.pem"),
                "-out",
                str(folder / "c.pem"),
            ),
        ],
        check=True,
        capture_output=True,
    )
    return str(folder / "c.pem"), str(folder / "k.pem")


CERT, KEY = self_signed()


def readme_defaults() -> dict[str, str]:
    """``VARIABLE -> default`` from the table of docs/configuration.md (``/`` rows give several)."""
    section = (ROOT / "docs" / "configuration.md").read_text()
    table: dict[str, str] = {}
    for row in re.findall(r"^\| (`[A-Z0-9_]+`.*?) \| (.+?) \| .*\|$", section, re.MULTILINE):
        names, defaults = re.findall(r"`([A-Z0-9_]+)`", row[0]), row[1].split(" / ")
        assert len(names) == len(defaults), row
        table.update(zip(names, (d.strip("`") for d in defaults), strict=True))
    return table


def test_the_readme_lists_every_variable_and_its_default():
    defaults, settings = readme_defaults(), Settings()
    assert set(defaults) == {name.upper() for name in Settings.model_fields}
    for name, documented in defaults.items():
        value = getattr(settings, name.lower())
        if documented in ("(none)", "(empty)"):
            assert value in (None, (), ""), name
        elif isinstance(value, int | float):
            assert value == float(documented), name
        else:
            assert value == documented, name


def test_settings_without_arguments_are_the_defaults_whatever_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "7000")
    assert Settings().web_port == 6066
    assert Settings.from_env().web_port == 7000
    assert Settings.from_env({}) == Settings()


SAMPLES = {
    "TELEGRAM_BOT_TOKEN": (TOKEN, TOKEN),
    "TELEGRAM_API_BASE_URL": ("http://127.0.0.1:1", "http://127.0.0.1:1"),
    "GEMINI_API_KEYS": (",".join(KEYS), KEYS),
    "GEMINI_API_BASE_URL": ("http://127.0.0.1:2", "http://127.0.0.1:2"),
    "RECOMMENDATIONS_CRON": ("30 5 * * 1-5", "30 5 * * 1-5"),
    "TIMEZONE": ("Europe/Moscow", "Europe/Moscow"),
    "WEB_PORT": ("7070", 7070),
    "DIGEST_LANGUAGE": ("ru", "ru"),
    "DIGEST_CURRENCY": ("RUB", "RUB"),
    "GROUP_MEMBERSHIP": ("Dynamic", "dynamic"),
    "LOG_FORMAT": ("JSON", "json"),
    "KAFKA_SECURITY_PROTOCOL": ("sasl_ssl", "SASL_SSL"),
    "KAFKA_SASL_MECHANISM": ("scram-sha-256", "SCRAM-SHA-256"),
    "KAFKA_SSL_CA_FILE": (CERT, CERT),
    "KAFKA_SSL_CERT_FILE": (CERT, CERT),
    "KAFKA_SSL_KEY_FILE": (KEY, KEY),
    "REDIS_URL": ("rediss://worker:pw@127.0.0.1:6380/0", "rediss://worker:pw@127.0.0.1:6380/0"),
    "REDIS_SSL_CA_FILE": (A_FILE, A_FILE),
    "OPS_TOKEN": (OPS, OPS),
    "WEB_ALLOWED_HOSTS": ("Lunch.Example, 10.0.0.7", ("lunch.example", "10.0.0.7")),
}


def sample(name: str) -> tuple[str, object]:
    """A valid value of ``name`` other than its default, and what it reads as."""
    if name in SAMPLES:
        return SAMPLES[name]
    default = getattr(Settings(), name.lower())
    if isinstance(default, int):
        return str(default + 3), default + 3
    if isinstance(default, float):
        return str(default + 0.5), default + 0.5
    return f"sample-{name.lower()}", f"sample-{name.lower()}"


def test_every_variable_sets_its_field():
    names = [name.upper() for name in Settings.model_fields]
    settings = Settings.from_env({name: sample(name)[0] for name in names})
    for name in names:
        assert getattr(settings, name.lower()) == sample(name)[1] != getattr(Settings(), name.lower()), name
    assert settings.zone.key == "Europe/Moscow"
    assert settings.topic("deadline-passed") == "sample-topic_prefixdeadline-passed"


def test_blank_values_mean_the_default():
    blanks = ("", " ", "\t", " \n")
    blank = {name.upper(): blanks[i % len(blanks)] for i, name in enumerate(Settings.model_fields)}
    assert Settings.from_env(blank) == Settings()


def test_parsing_quirks_callers_rely_on():
    settings = Settings.from_env(
        {
            "GEMINI_API_KEYS": f" {KEYS[0]} ,, {KEYS[1]},",
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081/",
            "GEMINI_API_BASE_URL": "https://example.test/",
            "TELEGRAM_BOT_TOKEN": "  ",
            "TOPIC_PREFIX": "",
            "DIGEST_CURRENCY": " rub ",
            "DIGEST_LANGUAGE": "RU",
            "APP_ID": "  spaced  ",
        }
    )
    assert settings.gemini_api_keys == KEYS
    assert settings.telegram_api_base_url == "http://127.0.0.1:8081"
    assert settings.gemini_api_base_url == "https://example.test"
    assert settings.telegram_bot_token is None
    assert settings.topic_prefix == "" and settings.topic("x") == "x"
    assert (settings.digest_currency, settings.digest_language) == ("RUB", "ru")
    assert settings.app_id == "spaced"


def test_settings_are_immutable():
    with pytest.raises(ValidationError):
        Settings().web_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "bad", "reason"),
    [
        ("DIGEST_CONCURRENCY", "0", "must be >= 1"),
        ("RECOMMENDATION_CONCURRENCY", "-1", "must be >= 1"),
        ("TOPIC_PARTITIONS", "0", "must be >= 1"),
        ("TOPIC_REPLICATION", "0", "must be >= 1"),
        ("NOTIFY_MAX_ATTEMPTS", "0", "must be >= 1"),
        ("TELEGRAM_GROUP_PER_MINUTE", "0", "must be >= 1"),
        ("TELEGRAM_GLOBAL_RATE", "0", "must be > 0"),
        ("TELEGRAM_FALLBACK_RATE", "-3", "must be > 0"),
        ("TELEGRAM_TIMEOUT", "0", "must be > 0"),
        ("TELEGRAM_TIMEOUT", "ten", "must be a number"),
        ("TELEGRAM_TIMEOUT", "inf", "must be a finite number"),
        ("TELEGRAM_CHAT_INTERVAL", "-1", "must be >= 0"),
        ("TELEGRAM_MAX_WAIT", "-0.5", "must be >= 0"),
        ("DIGEST_GIVE_UP_AFTER", "0", "must be > 0"),
        ("NOTIFY_BACKOFF_BASE", "0", "must be > 0"),
        ("NOTIFY_BACKOFF_MAX", "nan", "must be a finite number"),
        ("BROKER_SESSION_TIMEOUT", "0", "must be > 0"),
        ("STREAM_STALL_AFTER", "-30", "must be > 0"),
        ("GEMINI_KEY_RPM", "-1", "must be >= 0"),
        ("GEMINI_PRICE_INPUT_PER_M", "-0.1", "must be >= 0"),
        ("GEMINI_PRICE_OUTPUT_PER_M", "free", "must be a number"),
        ("RECOMMENDATIONS_CHECK_INTERVAL", "0", "must be > 0"),
        ("RECOMMENDATIONS_STALL_AFTER", "0", "must be > 0"),
        ("WEB_PORT", "0", "must be >= 1"),
        ("WEB_PORT", "65536", "must be <= 65535"),
        ("WEB_PORT", "http", "must be an integer"),
        ("TIMEZONE", "Mars/Olympus", "must be an IANA time zone"),
        ("TIMEZONE", "../etc/passwd", "must be an IANA time zone"),
        ("RECOMMENDATIONS_CRON", "0 25 * * *", "must be a crontab"),
        ("RECOMMENDATIONS_CRON", "daily", "must be a crontab"),
        ("DIGEST_LANGUAGE", "de", "must be 'en' or 'ru'"),
        ("DIGEST_CURRENCY", "XYZ", "must be empty or an ISO 4217 currency code"),
        ("TELEGRAM_API_BASE_URL", "api.telegram.org", "must be an http(s) URL"),
        ("GEMINI_API_BASE_URL", "ftp://example.test", "must be an http(s) URL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name, bad, reason):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({name: bad})
    (line,) = caught.value.problems
    assert line.startswith(f"{name} {reason}") and line.endswith(f", got {bad!r}"), line


def test_the_briefs_example_reads_as_one_line():
    with pytest.raises(ConfigurationError, match=r"^DIGEST_CONCURRENCY must be >= 1, got '0'$"):
        Settings.from_env({"DIGEST_CONCURRENCY": "0"})


def test_each_bad_variable_gets_its_own_line():
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WEB_PORT": "0", "TIMEZONE": "Nowhere", "DIGEST_LANGUAGE": "fr", "APP_ID": "fine"})
    assert sorted(p.split()[0] for p in caught.value.problems) == ["DIGEST_LANGUAGE", "TIMEZONE", "WEB_PORT"]


def test_secrets_never_appear_in_repr_str_or_errors():
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "GEMINI_API_KEYS": ",".join(KEYS),
        "OPS_TOKEN": OPS,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_USERNAME": "worker",
        "KAFKA_SASL_PASSWORD": "kafka-secret",
        "DATABASE_URL": "postgresql+asyncpg://lunch:db-secret@db.internal:5432/lunch",
        "REDIS_URL": "rediss://worker:redis-secret@redis.internal:6380/0",
    }
    settings = Settings.from_env(env)
    assert (settings.telegram_bot_token, settings.gemini_api_keys, settings.ops_token) == (TOKEN, KEYS, OPS)
    assert settings.kafka_sasl_password == "kafka-secret" and "db-secret" in settings.database_url
    assert "postgresql+asyncpg://lunch:***@db.internal:5432/lunch" in repr(settings)
    texts = [repr(settings), str(settings)]
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**env, "DIGEST_CONCURRENCY": "0"})
    texts.append(str(caught.value))
    bad_secrets = {"TELEGRAM_BOT_TOKEN": "123456:secret bot token", "GEMINI_API_KEYS": "secret-key-one,secret key two"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(bad_secrets)
    assert sorted(caught.value.problems) == [
        "GEMINI_API_KEYS must contain no whitespace (value not shown)",
        "TELEGRAM_BOT_TOKEN must contain no whitespace (value not shown)",
    ]
    with pytest.raises(ValidationError) as direct:
        Settings(telegram_bot_token="123456:secret bot token")
    texts += [str(direct.value), repr(direct.value.errors(include_input=False))]
    for text in texts:
        assert "secret" not in text, text


def test_load_settings_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as caught:
        load_settings({"DIGEST_CONCURRENCY": "0"})
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "lunch-streams: invalid configuration: DIGEST_CONCURRENCY must be >= 1, got '0'\n")
    assert load_settings({"DIGEST_CONCURRENCY": "3"}).digest_concurrency == 3


def test_a_bad_variable_stops_the_process_with_one_line_on_stderr():
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    code = "from streams.settings import load_settings; load_settings()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DIGEST_CONCURRENCY": "0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = "lunch-streams: invalid configuration: DIGEST_CONCURRENCY must be >= 1, got '0'"
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, [line], "")


def test_the_static_member_id_is_the_variable_else_the_host_name_and_none_when_dynamic():
    assert Settings.from_env({"WORKER_INSTANCE_ID": "worker-2"}).group_instance_id == "worker-2"
    assert Settings().group_instance_id == f"{socket.gethostname()}:6066"
    assert Settings.from_env({"WEB_PORT": "6067"}).group_instance_id == f"{socket.gethostname()}:6067"
    assert Settings.from_env({"GROUP_MEMBERSHIP": "dynamic", "WORKER_INSTANCE_ID": "w"}).group_instance_id is None


def test_secrets_and_urls_can_come_from_files(tmp_path):
    (tmp_path / "token").write_text(OPS + "\n")
    (tmp_path / "db").write_text("postgresql+asyncpg://lunch:db-secret@db:5432/lunch\n")
    env = {"OPS_TOKEN_FILE": str(tmp_path / "token"), "DATABASE_URL_FILE": str(tmp_path / "db")}
    settings = Settings.from_env(env)
    assert settings.ops_token == OPS and settings.database_url.endswith("@db:5432/lunch")
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**env, "OPS_TOKEN": OPS, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    assert sorted(caught.value.problems) == [
        f"KAFKA_SASL_PASSWORD_FILE cannot be read (No such file or directory), got '{tmp_path / 'missing'}'",
        "OPS_TOKEN and OPS_TOKEN_FILE are both set: give one",
    ]
    # Only secrets and URLs read files: any other X_FILE is not a setting.
    assert Settings.from_env({"WEB_PORT_FILE": str(tmp_path / "token")}).web_port == 6066


def test_a_password_inside_a_url_is_never_shown():
    assert redact_url("redis://:p%40ss@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("kafka://h1:9092,kafka://h2:9092") == "kafka://h1:9092,kafka://h2:9092"
    assert (
        redact_url("postgresql+asyncpg://postgres@127.0.0.1/lunch") == "postgresql+asyncpg://postgres@127.0.0.1/lunch"
    )
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"REDIS_URL": "redis://u:pw-secret@h/0", "REDIS_SSL_CA_FILE": A_FILE})
    assert caught.value.problems == ("REDIS_SSL_CA_FILE needs a rediss:// REDIS_URL",)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"OPS_TOKEN": "x" * 31},
            "OPS_TOKEN must be at least 32 characters (e.g. openssl rand -hex 24) (value not shown)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set for SASL_SSL",
        ),
        (
            {"KAFKA_SSL_CA_FILE": A_FILE},
            "KAFKA_SSL_CA_FILE needs KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL, not PLAINTEXT",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": CERT},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS)",
        ),
        (
            {"KAFKA_SSL_CA_FILE": "/no/such/ca.pem"},
            "KAFKA_SSL_CA_FILE must be the path of a readable file, got '/no/such/ca.pem'",
        ),
        (
            {"KAFKA_SASL_MECHANISM": "GSSAPI"},
            "KAFKA_SASL_MECHANISM must be 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512', got 'GSSAPI'",
        ),
    ],
)
def test_security_settings_that_cannot_work_are_one_line(env, problem):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert caught.value.problems == (problem,)


def test_the_advertised_host_is_reachable_and_the_allowed_hosts_follow_it():
    assert Settings().advertised_host == "127.0.0.1"
    assert Settings.from_env({"WEB_BIND": "0.0.0.0"}).advertised_host == socket.gethostname()
    worker = Settings.from_env({"WEB_BIND": "0.0.0.0", "WEB_ADVERTISED_HOST": "Worker-1.lunch"})
    assert worker.advertised_host == "Worker-1.lunch"
    assert worker.allowed_hosts == {"worker-1.lunch", "localhost", "127.0.0.1"}
    assert Settings.from_env({"WEB_ALLOWED_HOSTS": "ops.example"}).allowed_hosts == {"ops.example"}
