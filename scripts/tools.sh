#!/usr/bin/env bash
# Tools the tests use beyond Python: promtool (Debian's `prometheus` package), for the alert rules' unit tests
# and `promtool check metrics`. Idempotent: does nothing when promtool is on the PATH.
set -euo pipefail
command -v promtool >/dev/null && exit 0
command -v apt-get >/dev/null || { echo "tools.sh: apt-get not found; install promtool (prometheus) by hand" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends prometheus </dev/null >/dev/null; }
echo "tools.sh: apt-get install prometheus (for promtool)"
# No candidate means the package lists are missing or stale; a failed download too.
if [[ ! "$(apt-cache policy prometheus 2>/dev/null)" =~ Candidate:\ [^\(] ]] || ! install; then
  apt-get update -q >/dev/null
  install
fi
command -v promtool >/dev/null
