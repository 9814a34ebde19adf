"""docker/ cannot run here (no Docker engine): keep it consistent with the code and the local scripts."""

from pathlib import Path

import yaml

from streams.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_has_the_services_with_healthchecks_and_the_worker_waits_for_them():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "postgres", "redis", "worker", "prometheus"}
    for name in ("kafka", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    depends = services["worker"]["depends_on"]
    healthy = dict.fromkeys(("kafka", "postgres", "redis"), "service_healthy")
    assert {k: v["condition"] for k, v in depends.items()} == healthy


def test_worker_environment_is_read_by_settings_and_points_at_the_compose_services():
    worker_env = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["worker"]["environment"]
    resolved = {k: (v if "${" not in str(v) else "") for k, v in worker_env.items()}
    settings = Settings.from_env({k: str(v) for k, v in resolved.items()})
    assert settings.kafka_broker_url == "kafka://kafka:9092"
    assert settings.database_url == "postgresql+asyncpg://postgres@postgres:5432/lunch"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.web_bind == "0.0.0.0"
    assert settings.advertised_host == "worker"  # the service name the other workers resolve, not 0.0.0.0
    known = {
        "KAFKA_BROKER_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_API_BASE_URL",
        "GEMINI_API_KEYS",
        "TIMEZONE",
        "WEB_PORT",
        "WEB_BIND",
        "WEB_ADVERTISED_HOST",
        "OPS_TOKEN",
        "WORKER_INSTANCE_ID",
        "BROKER_SESSION_TIMEOUT",
        "LOG_FORMAT",
    }
    assert set(worker_env) <= known
    assert settings.group_instance_id == "lunch-worker-1"  # static membership under a fixed id


def test_dockerfile_runs_the_worker_as_a_non_root_user():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER lunch\n" in dockerfile
    assert 'CMD ["faust", "-A", "streams.app", "worker", "-l", "info"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile


def test_the_healthchecks_are_liveness_probes():
    """/livez, not /health: a database outage must not make Docker (or an orchestrator) restart the worker."""
    healthcheck = (DOCKER / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1].split("\nCMD [", 1)[0]
    assert "/livez" in healthcheck and "/health" not in healthcheck
    worker = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["worker"]
    assert "/livez" in " ".join(worker["healthcheck"]["test"])
