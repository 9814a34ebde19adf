"""The ``kafka-acls`` commands of docs/operations.md are the ACLs the secured test broker runs with.

The broker's are ``scripts/kafka/acls.txt``, added by ``scripts/services.sh``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The test broker's TOPIC_PREFIX, and the README's production one.
TEST_PREFIX, README_PREFIX = "lunch-secure.", "lunch."

Acl = tuple[str, str, str, str, frozenset[str]]


def broker_acls() -> set[Acl]:
    acls = set()
    for line in (ROOT / "scripts" / "kafka" / "acls.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            principal, resource, pattern, name, operations = line.split()
            name = name.replace(TEST_PREFIX, README_PREFIX, 1) if name.startswith(TEST_PREFIX) else name
            acls.add((principal, resource, pattern, name, frozenset(operations.split(","))))
    return acls


def readme_acls() -> set[Acl]:
    text = (ROOT / "docs" / "operations.md").read_text().replace("\\\n", " ")
    acls = set()
    for command in re.findall(r"^\$ACLS (.+)$", text, re.MULTILINE):
        principal = re.search(r"--allow-principal (\S+)", command)[1]
        operations = frozenset(re.findall(r"--operation (\S+)", command))
        pattern = m[1] if (m := re.search(r"--resource-pattern-type (\S+)", command)) else "literal"
        if "--cluster" in command:
            resource, name = "cluster", "kafka-cluster"
        else:
            resource, name = re.search(r"--(topic|group) (\S+)", command).groups()
        acls.add((principal, resource, pattern, name, operations))
    return acls


def test_the_operations_guide_lists_exactly_the_acls_the_tests_run_under():
    documented = readme_acls()
    assert documented, "no kafka-acls commands found in docs/operations.md"
    assert documented == broker_acls()


def test_the_backend_may_only_write_its_two_topics():
    backend = {acl for acl in broker_acls() if acl[0] == "User:backend"}
    assert {(resource, pattern, name) for _, resource, pattern, name, _ in backend} == {
        ("topic", "literal", f"{README_PREFIX}deadline-passed"),
        ("topic", "literal", f"{README_PREFIX}daily-tasks"),
    }
    assert all(operations == {"Write", "Describe"} for *_, operations in backend)
