"""The alert rules (docker/prometheus/alerts.yml): valid, each unit-tested by promtool, one for every log line
of docs/operations.md's "Log lines that need a person" table. promtool comes from scripts/tools.sh (the test
command)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: run scripts/tools.sh (scripts/test.sh does)")
    return subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def alert_names() -> list[str]:
    return [rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_are_valid():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_is_tested_firing_and_quiet():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == quiet == set(alert_names())


def test_every_log_line_that_needs_a_person_has_a_rule_or_says_why_not():
    operations = (ROOT / "docs" / "operations.md").read_text()
    table = operations.split("## Log lines that need a person", 1)[1].split("\n#", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 12
    known = set(alert_names())
    for row in rows:
        alert = row.rstrip(" |").rsplit("|", 1)[1]
        named = set(re.findall(r"`(Lunch\w+)`", alert))
        assert named <= known, row
        assert named or alert.strip().startswith("none:"), f"no rule and no reason: {row}"


def test_the_compose_prometheus_loads_these_rules_and_scrapes_the_worker():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config, wherever it is mounted
    [job] = config["scrape_configs"]
    assert job["job_name"] == "lunch-streams"  # LunchWorkerDown watches up{job="lunch-streams"}
    assert job["static_configs"][0]["targets"] == ["worker:6066"]
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
