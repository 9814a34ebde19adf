#!/usr/bin/env bash
# The main job: local services, schema and demo data, then the worker in the foreground.
# Without TELEGRAM_BOT_TOKEN, digests go to a local sandbox Telegram that prints them here;
# Without GEMINI_API_KEYS, recommendations come from a local sandbox Gemini.
# Once the worker is ready, a fresh demo cafe with today's orders is created and its
# deadline event published, so a digest arrives; then a recommendations task is
# published and the demo users' recommendations are printed as they reach Redis.
# The worker reads the environment: DIGEST_LANGUAGE=ru DIGEST_CURRENCY=RUB scripts/demo.sh
# prints the digest in Russian with prices in roubles.
# Without OPS_TOKEN (or OPS_TOKEN_FILE), an operator's token is made once and kept in a file readable by you
# alone; the console's address and that file are printed: sign in there with its content.
# Stop with Ctrl-C.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

scripts/services.sh start
scripts/bootstrap.sh
py=.venv/bin/python
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  port="${SANDBOX_TELEGRAM_PORT:-8081}"
  export TELEGRAM_BOT_TOKEN="1000000001:sandbox-demo-token"
  export TELEGRAM_API_BASE_URL="http://127.0.0.1:$port"
  $py -m sandbox.telegram --port "$port" &
  pids+=($!)
  echo "demo: no TELEGRAM_BOT_TOKEN given: digests go to the sandbox Telegram on port $port"
fi
if [ -z "${GEMINI_API_KEYS:-}" ]; then
  port="${SANDBOX_GEMINI_PORT:-8082}"
  export GEMINI_API_KEYS="sandbox-demo-key"
  export GEMINI_API_BASE_URL="http://127.0.0.1:$port"
  $py -m sandbox.gemini --port "$port" &
  pids+=($!)
  echo "demo: no GEMINI_API_KEYS given: recommendations come from the sandbox Gemini on port $port"
fi

if [ -z "${OPS_TOKEN:-}" ] && [ -z "${OPS_TOKEN_FILE:-}" ]; then
  token_file="${LUNCH_SERVICES_HOME:-${HOME:-/root}/.cache/lunch-streams}/demo-ops-token"
  if [ ! -s "$token_file" ]; then
    mkdir -p "$(dirname "$token_file")"
    (umask 077 && $py -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token_file")
  fi
  export OPS_TOKEN_FILE="$token_file"
fi

web_port="${WEB_PORT:-6066}"
console="http://127.0.0.1:$web_port/ops/"
if [ -n "${OPS_TOKEN_FILE:-}" ]; then
  signin="sign in with the token in $OPS_TOKEN_FILE: cat it"
else
  signin="sign in with your OPS_TOKEN"
fi
(
  for _ in $(seq 1 120); do
    if (echo > "/dev/tcp/127.0.0.1/$web_port") 2>/dev/null; then
      $py -m sandbox.demo deadline
      echo "demo: the operator console: $console ($signin)"
      $py -m sandbox.demo task
      exit 0
    fi
    sleep 0.5
  done
  echo "demo: the worker did not open port $web_port in 60 s" >&2
) &
pids+=($!)

.venv/bin/faust -A streams.app worker -l info
