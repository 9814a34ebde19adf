#!/usr/bin/env bash
# The browser the console's test drives: headless Chromium and its WebDriver, from Debian's packages
# (`chromium`, `chromium-driver` -> /usr/bin/chromium, /usr/bin/chromedriver). Idempotent: does nothing
# when both are installed.
set -euo pipefail
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] && exit 0
command -v apt-get >/dev/null || { echo "browser.sh: apt-get not found; install chromium and chromium-driver" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends chromium chromium-driver </dev/null >/dev/null; }
echo "browser.sh: apt-get install chromium chromium-driver (for the console's browser test)"
# No candidate means the package lists are missing or stale; a failed download too.
if [[ ! "$(apt-cache policy chromium-driver 2>/dev/null)" =~ Candidate:\ [^\(] ]] || ! install; then
  apt-get update -q >/dev/null
  install
fi
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]
