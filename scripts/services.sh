#!/usr/bin/env bash
# Local services for lunch-streams: Apache Kafka (KRaft, from Maven Central jars), PostgreSQL, Redis.
#
#   scripts/services.sh start  [kafka|postgres|redis ...]   # default: all three
#   scripts/services.sh stop   [kafka|postgres|redis ...]
#   scripts/services.sh status [kafka|postgres|redis ...]   # exit 3 if any requested service is down
#
# Idempotent: a service already answering on its port is reused; missing software is installed
# (Debian packages via apt-get, Kafka jars via Maven); then the script waits until each is ready.
#
#   kafka     127.0.0.1:9092 (PLAINTEXT), controller 127.0.0.1:9093
#   postgres  127.0.0.1:5432, user postgres, no password, database "lunch"
#   redis     127.0.0.1:6379
#
# Kafka jars, data and logs (and redis' files) live outside the repo so fresh clones reuse them:
#   ${LUNCH_SERVICES_HOME:-$HOME/.cache/lunch-streams}
# Environment: LUNCH_SERVICES_HOME, PYTHON (interpreter for the Kafka readiness probe; default: the
# repo's .venv if present, else python3), KAFKA_HEAP_OPTS (default "-Xms128m -Xmx512m"),
# SERVICES_WAIT_SECONDS (readiness timeout per service, default 120).
#
# Meant for a local dev/test machine or CI runner only (PostgreSQL trusts loopback connections).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
KAFKA_SRC="$SCRIPT_DIR/kafka"

SVC_HOME="${LUNCH_SERVICES_HOME:-${HOME:-/root}/.cache/lunch-streams}"
KAFKA_HOME="$SVC_HOME/kafka"
REDIS_HOME="$SVC_HOME/redis"
WAIT_SECONDS="${SERVICES_WAIT_SECONDS:-120}"

HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
PG_PORT=5432
PG_DB=lunch
REDIS_PORT=6379
ALL_SERVICES=(kafka postgres redis)

export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------------------------- helpers

log() { printf '%s\n' "$*"; }
err() { printf 'services.sh: error: %s\n' "$*" >&2; }

# die MESSAGE [LOGFILE...]: print the error and the last lines of each log that exists, exit 1.
die() {
    local msg="$1"; shift
    err "$msg"
    local f
    for f in "$@"; do
        if [[ -s "$f" ]]; then
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# wait_until SECONDS COMMAND...: poll COMMAND every 0.5 s until it succeeds or time runs out.
wait_until() {
    local limit="$1"; shift
    local deadline=$((SECONDS + limit))
    until "$@"; do
        (( SECONDS < deadline )) || return 1
        sleep 0.5
    done
}

# Shell code closing every inherited file descriptor above 2. Daemons we leave behind must hold neither our lock
# nor a pipe of whoever called us (a CI runner waiting for EOF would hang).
# shellcheck disable=SC2016  # expanded by the inner bash
CLOSE_FDS='for fd in /proc/$$/fd/*; do fd=${fd##*/}; if (( fd > 2 )); then eval "exec $fd>&-"; fi; done'

# run_closed CMD...: run CMD with stdin from /dev/null and no inherited file descriptors above 2.
run_closed() {
    bash -c "$CLOSE_FDS"'; exec "$@"' run_closed "$@" </dev/null
}

APT_UPDATED=0
APT_LOG="$SVC_HOME/apt.log"

# apt_install PACKAGE...: install Debian packages; runs apt-get update only when needed.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    mkdir -p "$SVC_HOME"
    local need_update=0 p
    for p in "$@"; do
        # No candidate means the package lists are missing or stale.
        # (No "| grep -q" here and below: with pipefail, grep exiting early can fail the pipeline via SIGPIPE.)
        [[ "$(apt-cache policy "$p" 2>/dev/null)" =~ Candidate:\ [^\(] ]] || need_update=1
    done
    if (( need_update && !APT_UPDATED )); then
        log "  apt-get update"
        apt-get update -q >>"$APT_LOG" 2>&1 || die "apt-get update failed" "$APT_LOG"
        APT_UPDATED=1
    fi
    log "  apt-get install $*"
    if ! run_closed apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1; then
        (( APT_UPDATED )) && die "apt-get install $* failed" "$APT_LOG"
        # A stale package index (404 on download) is fixed by an update; try once more.
        log "  apt-get update (retry)"
        apt-get update -q >>"$APT_LOG" 2>&1 || die "apt-get update failed" "$APT_LOG"
        APT_UPDATED=1
        run_closed apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1 \
            || die "apt-get install $* failed" "$APT_LOG"
    fi
}

find_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        printf '%s\n' "$PYTHON"
    elif [[ -x "$REPO_DIR/.venv/bin/python" ]]; then
        printf '%s\n' "$REPO_DIR/.venv/bin/python"
    else
        printf '%s\n' python3
    fi
}

# ---------------------------------------------------------------------------------------------- kafka

KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_CONF="$KAFKA_HOME/config"
KAFKA_PID="$KAFKA_HOME/kafka.pid"
KAFKA_OUT="$KAFKA_LOGS/kafka.out"

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p;T;q' "$KAFKA_SRC/pom.xml"
}

# Pid of the broker this script started (pid file, or a java process running our config), if alive.
kafka_pid() {
    local pid=""
    if [[ -s "$KAFKA_PID" ]]; then
        pid="$(cat "$KAFKA_PID")"
        if [[ -n "$pid" && "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *kafka.Kafka* ]]; then
            printf '%s\n' "$pid"; return 0
        fi
    fi
    pid="$(pgrep -o -f "kafka\.Kafka $KAFKA_CONF/server.properties" 2>/dev/null || true)"
    [[ -n "$pid" ]] && { printf '%s\n' "$pid"; return 0; }
    return 1
}

kafka_fetch_libs() {
    local stamp
    stamp="$(sha256sum <"$KAFKA_SRC/pom.xml" | cut -c1-16)"
    if [[ -f "$KAFKA_LIBS/.fetched-$stamp" ]]; then
        return 0
    fi
    if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
        apt_install default-jre-headless maven
    fi
    log "  fetching Kafka $(kafka_version) jars with Maven into $KAFKA_LIBS"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$KAFKA_LIBS.tmp"
    # -Dstyle.color=never: no ANSI codes in quiet mode.
    if ! (cd "$KAFKA_SRC" && mvn -q -B -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" \
            dependency:copy-dependencies -Dkafka.libs.dir="$KAFKA_LIBS.tmp") >"$KAFKA_HOME/mvn.log" 2>&1; then
        die "Maven could not fetch the Kafka jars" "$KAFKA_HOME/mvn.log"
    fi
    ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar after Maven" "$KAFKA_HOME/mvn.log"
    touch "$KAFKA_LIBS.tmp/.fetched-$stamp"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
}

kafka_write_config() {
    mkdir -p "$KAFKA_CONF" "$KAFKA_DATA" "$KAFKA_LOGS"
    sed "s|@DATA_DIR@|$KAFKA_DATA|g" "$KAFKA_SRC/server.properties.template" >"$KAFKA_CONF/server.properties.new"
    mv "$KAFKA_CONF/server.properties.new" "$KAFKA_CONF/server.properties"
    cp "$KAFKA_SRC/log4j.properties" "$KAFKA_CONF/log4j.properties"
}

# kafka_java_cmd HEAP_OPTS: sets KJAVA to the java command line (without the main class).
kafka_java_cmd() {
    local heap
    read -r -a heap <<<"$1"
    KJAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$KAFKA_CONF/log4j.properties" "-Dkafka.logs.dir=$KAFKA_LOGS"
        -cp "$KAFKA_LIBS/*")
}

kafka_format() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    local cluster_id="-"
    # A random 16-byte id, base64url without padding, as kafka-storage random-uuid prints (that costs a JVM start).
    # One starting with "-" would be read as an option, so draw again.
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    log "  formatting Kafka storage (cluster id $cluster_id)"
    kafka_java_cmd "-Xmx256m"
    "${KJAVA[@]}" kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$KAFKA_CONF/server.properties" >"$KAFKA_LOGS/format.log" 2>&1 \
        || die "Kafka storage format failed" "$KAFKA_LOGS/format.log"
}

# True once the broker answers a metadata request listing itself (not just an open port).
kafka_usable() {
    port_open "$KAFKA_PORT" || return 1
    timeout 20 "$(find_python)" - "$HOST:$KAFKA_PORT" <<'PY' >/dev/null 2>&1
import sys
bootstrap = sys.argv[1]
try:
    import asyncio
    from aiokafka.client import AIOKafkaClient
except ImportError:
    # No aiokafka: a raw ApiVersions v0 request answered with error_code 0 is good enough.
    import socket, struct
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"services.sh"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        hdr = b""
        while len(hdr) < 10:
            chunk = s.recv(10 - len(hdr))
            if not chunk:
                sys.exit(1)
            hdr += chunk
    size, corr, error = struct.unpack(">iih", hdr)
    sys.exit(0 if corr == 7 and error == 0 else 1)

async def main():
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        md = await client.fetch_all_metadata()
        return bool(md.brokers()) and md.controller is not None
    finally:
        await client.close()

sys.exit(0 if asyncio.run(main()) else 1)
PY
}

kafka_start() {
    if port_open "$KAFKA_PORT"; then
        if wait_until "$WAIT_SECONDS" kafka_usable; then
            log "kafka: already running on $HOST:$KAFKA_PORT, reusing it"
            return 0
        fi
        die "something listens on $HOST:$KAFKA_PORT but does not answer as a Kafka broker" "$KAFKA_OUT" "$KAFKA_LOGS/server.log"
    fi
    local pid
    if pid="$(kafka_pid)"; then
        # Our broker is alive but not listening yet (still starting or recovering): wait for it.
        log "kafka: process $pid is starting, waiting for it"
    else
        log "kafka: starting Kafka $(kafka_version) on $HOST:$KAFKA_PORT"
        kafka_fetch_libs
        kafka_write_config
        kafka_format
        if port_open "$KAFKA_CONTROLLER_PORT"; then
            die "port $KAFKA_CONTROLLER_PORT (Kafka controller) is already taken by another process"
        fi
        : >"$KAFKA_OUT"
        # Start a fresh server.log, so the lines shown on failure are from this start.
        if [[ -f "$KAFKA_LOGS/server.log" ]]; then mv -f "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/server.log.prev"; fi
        rm -f "$KAFKA_PID"
        kafka_java_cmd "${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
        # setsid + nohup: the broker outlives this shell and its process group. A plain command (not a shell
        # function) in the background, so no copy of this script lingers as its parent holding our fds. The inner
        # bash closes inherited fds and writes its own pid (kept by exec for java) to the pid file.
        # shellcheck disable=SC2016  # $$, $0 and $@ are for the inner bash
        setsid nohup bash -c "$CLOSE_FDS"'; echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
            "${KJAVA[@]}" kafka.Kafka "$KAFKA_CONF/server.properties" </dev/null >>"$KAFKA_OUT" 2>&1 &
        wait_until 10 test -s "$KAFKA_PID" || die "Kafka launcher did not write $KAFKA_PID" "$KAFKA_OUT"
        pid="$(cat "$KAFKA_PID")"
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    until kafka_usable; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$KAFKA_PID"
            die "Kafka exited during startup (if the data is corrupt: rm -rf $KAFKA_DATA)" \
                "$KAFKA_OUT" "$KAFKA_LOGS/server.log"
        fi
        (( SECONDS < deadline )) || die "Kafka not ready after ${WAIT_SECONDS}s (pid $pid still running)" \
            "$KAFKA_OUT" "$KAFKA_LOGS/server.log"
        sleep 0.5
    done
    log "kafka: ready on $HOST:$KAFKA_PORT (pid $pid)"
}

kafka_stop() {
    local pid
    if ! pid="$(kafka_pid)"; then
        rm -f "$KAFKA_PID"
        if port_open "$KAFKA_PORT"; then
            log "kafka: $HOST:$KAFKA_PORT was not started by this script, leaving it running"
        else
            log "kafka: not running"
        fi
        return 0
    fi
    log "kafka: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 60 bash -c "! kill -0 $pid 2>/dev/null"; then
        log "kafka: still running after 60s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || die "could not stop Kafka pid $pid"
    fi
    rm -f "$KAFKA_PID"
    log "kafka: stopped"
}

kafka_status() {
    local pid=""
    pid="$(kafka_pid || true)"
    if port_open "$KAFKA_PORT"; then
        log "kafka: up on $HOST:$KAFKA_PORT${pid:+ (pid $pid, Kafka $(kafka_version))}"
    elif [[ -n "$pid" ]]; then
        log "kafka: starting (pid $pid, port $KAFKA_PORT not open yet)"; return 1
    else
        log "kafka: down"; return 1
    fi
}

# ---------------------------------------------------------------------------------------------- postgres

PG_VERSION=""
PG_CLUSTER=""

pg_installed() {
    command -v pg_ctlcluster >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Sets PG_VERSION/PG_CLUSTER to the cluster on port 5432 (creating one if there is none at all).
pg_pick_cluster() {
    local line
    line="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }')"
    if [[ -z "$line" ]]; then
        if [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
            die "PostgreSQL clusters exist but none uses port $PG_PORT:
$(pg_lsclusters)"
        fi
        local ver d
        ver="$(for d in /usr/lib/postgresql/*/bin/postgres; do d="${d#/usr/lib/postgresql/}"; echo "${d%%/*}"; done \
            | sort -V | tail -n1)"
        log "  creating PostgreSQL cluster $ver/main on port $PG_PORT"
        pg_createcluster "$ver" main --port "$PG_PORT" >/dev/null
        line="$ver main"
    fi
    PG_VERSION="${line% *}"
    PG_CLUSTER="${line#* }"
}

# Writes our settings; prints "changed" if a file was modified.
pg_configure() {
    local etc="/etc/postgresql/$PG_VERSION/$PG_CLUSTER" changed=""
    local dropin="$etc/conf.d/lunch-streams.conf" hba="$etc/pg_hba.conf"
    local want
    want="# Written by lunch-streams scripts/services.sh (local dev/test machine only).
listen_addresses = 'localhost'
max_connections = 200
synchronous_commit = off"
    mkdir -p "$etc/conf.d"
    if [[ "$(cat "$dropin" 2>/dev/null)" != "$want" ]]; then
        printf '%s\n' "$want" >"$dropin"
        chown postgres:postgres "$dropin" 2>/dev/null || true
        changed=1
    fi
    if ! grep -q 'lunch-streams services.sh' "$hba"; then
        # First matching rule wins, so these go on top. LOCAL DEV/TEST MACHINE ONLY: any local process may
        # connect over loopback TCP as any user without a password (our default URL has no password).
        local tmp="$hba.lunch-streams.tmp"
        {
            echo "# lunch-streams services.sh: passwordless loopback TCP -- local dev/test machine only"
            echo "host    all             all             127.0.0.1/32            trust"
            echo "host    all             all             ::1/128                 trust"
            echo "# end lunch-streams"
            cat "$hba"
        } >"$tmp"
        chown --reference="$hba" "$tmp"; chmod --reference="$hba" "$tmp"
        mv "$tmp" "$hba"
        changed=1
    fi
    [[ -n "$changed" ]] && echo changed
    return 0
}

pg_online() {
    [[ "$(pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4 }')" \
        == *online* ]]
}

pg_ready() {
    pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2
}

pg_psql() {
    PGCONNECT_TIMEOUT=5 psql -X -w -q -h "$HOST" -p "$PG_PORT" -U postgres "$@"
}

pg_ensure_db() {
    local exists
    if ! exists="$(pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'" 2>&1)"; then
        err "cannot connect as postgres without a password on $HOST:$PG_PORT: $exists"
        return 1
    fi
    if [[ "$exists" != 1 ]]; then
        pg_psql -d postgres -c "create database $PG_DB" >/dev/null
        log "postgres: created database $PG_DB"
    fi
}

pg_start() {
    if port_open "$PG_PORT"; then
        wait_until "$WAIT_SECONDS" pg_ready || die "something listens on $HOST:$PG_PORT but is not a ready PostgreSQL"
        log "postgres: already running on $HOST:$PG_PORT, reusing it"
        pg_ensure_db || die "database $PG_DB could not be checked/created"
        return 0
    fi
    if ! pg_installed; then
        log "postgres: installing"
        apt_install postgresql
        pg_installed || die "PostgreSQL server binaries still missing after apt-get install" "$APT_LOG"
    fi
    pg_pick_cluster
    local changed pglog
    changed="$(pg_configure)"
    pglog="/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if pg_online; then
        if [[ -n "$changed" ]]; then
            log "postgres: restarting cluster $PG_VERSION/$PG_CLUSTER for new settings"
            run_closed pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart -m fast || die "pg_ctlcluster restart failed" "$pglog"
        fi
    else
        log "postgres: starting cluster $PG_VERSION/$PG_CLUSTER on $HOST:$PG_PORT"
        run_closed pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start || die "pg_ctlcluster start failed" "$pglog"
    fi
    wait_until "$WAIT_SECONDS" pg_ready || die "PostgreSQL not ready after ${WAIT_SECONDS}s" "$pglog"
    pg_ensure_db || die "database $PG_DB could not be checked/created" "$pglog"
    log "postgres: ready on $HOST:$PG_PORT (cluster $PG_VERSION/$PG_CLUSTER, database $PG_DB)"
}

pg_stop() {
    if ! pg_installed || [[ -z "$(pg_lsclusters -h 2>/dev/null)" ]]; then
        log "postgres: not installed"
        return 0
    fi
    pg_pick_cluster
    if pg_online; then
        log "postgres: stopping cluster $PG_VERSION/$PG_CLUSTER"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast
        log "postgres: stopped"
    elif port_open "$PG_PORT"; then
        log "postgres: $HOST:$PG_PORT was not started by this script, leaving it running"
    else
        log "postgres: not running"
    fi
}

pg_status() {
    if pg_ready; then
        local where=""
        if pg_installed; then
            where="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 == "online" { print " (cluster " $1 "/" $2 ")"; exit }')"
        fi
        log "postgres: up on $HOST:$PG_PORT$where"
    else
        log "postgres: down"; return 1
    fi
}

# ---------------------------------------------------------------------------------------------- redis

REDIS_LOG="$REDIS_HOME/redis.log"

redis_ping() {
    [[ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_start() {
    if port_open "$REDIS_PORT"; then
        command -v redis-cli >/dev/null || apt_install redis-tools
        wait_until "$WAIT_SECONDS" redis_ping || die "something listens on $HOST:$REDIS_PORT but does not answer PING"
        log "redis: already running on $HOST:$REDIS_PORT, reusing it"
        return 0
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        log "redis: installing"
        apt_install redis-server
    fi
    mkdir -p "$REDIS_HOME"
    log "redis: starting on $HOST:$REDIS_PORT"
    # Our own command-line config (not /etc/redis/redis.conf): loopback only, no persistence, daemonized.
    run_closed redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes --daemonize yes \
        --dir "$REDIS_HOME" --pidfile "$REDIS_HOME/redis.pid" --logfile "$REDIS_LOG" \
        --save '' --appendonly no \
        || die "redis-server failed to start" "$REDIS_LOG"
    wait_until "$WAIT_SECONDS" redis_ping || die "Redis not ready after ${WAIT_SECONDS}s" "$REDIS_LOG"
    log "redis: ready on $HOST:$REDIS_PORT"
}

redis_stop() {
    if ! port_open "$REDIS_PORT"; then
        log "redis: not running"
        return 0
    fi
    log "redis: stopping"
    redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    wait_until 20 bash -c "! (exec 3<>/dev/tcp/$HOST/$REDIS_PORT) 2>/dev/null" || die "Redis still answering after shutdown" "$REDIS_LOG"
    log "redis: stopped"
}

redis_status() {
    if redis_ping; then
        log "redis: up on $HOST:$REDIS_PORT"
    else
        log "redis: down"; return 1
    fi
}

# ---------------------------------------------------------------------------------------------- main

usage() {
    echo "usage: $0 start|stop|status [kafka|postgres|redis ...]" >&2
    exit 2
}

main() {
    [[ $# -ge 1 ]] || usage
    local action="$1"; shift
    local services=("$@")
    [[ ${#services[@]} -gt 0 ]] || services=("${ALL_SERVICES[@]}")
    local s
    for s in "${services[@]}"; do
        case "$s" in kafka|postgres|redis) ;; *) err "unknown service: $s"; usage ;; esac
    done

    case "$action" in
        start|stop)
            mkdir -p "$SVC_HOME"
            # One start/stop at a time (e.g. parallel test runs calling start). Commands that may leave a daemon
            # behind run through run_closed, so the daemon does not inherit (and hold) this lock.
            exec 9>"$SVC_HOME/services.lock"
            flock -w 600 9 || die "timed out waiting for $SVC_HOME/services.lock"
            local t0=$SECONDS fn
            for s in "${services[@]}"; do
                case "$s" in postgres) fn=pg ;; *) fn="$s" ;; esac
                "${fn}_$action"
            done
            log "services.sh $action: done in $((SECONDS - t0))s"
            ;;
        status)
            local rc=0
            for s in "${services[@]}"; do
                case "$s" in postgres) fn=pg ;; *) fn="$s" ;; esac
                "${fn}_status" || rc=3
            done
            return "$rc"
            ;;
        *) usage ;;
    esac
}

main "$@"
