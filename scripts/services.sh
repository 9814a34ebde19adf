#!/usr/bin/env bash
# Local services for lunch-streams: Apache Kafka (KRaft, from Maven Central jars), PostgreSQL, Redis, and a secured
# second Kafka broker and Redis (TLS, SCRAM / mutual TLS, ACLs) for tests of a production-like deployment.
#
#   scripts/services.sh start  [kafka|postgres|redis|kafka-secure|redis-tls ...]   # default: all five
#   scripts/services.sh stop   [kafka|postgres|redis|kafka-secure|redis-tls ...]
#   scripts/services.sh status [kafka|postgres|redis|kafka-secure|redis-tls ...]   # exit 3 if any is down
#
# Idempotent: a service already answering on its port is reused; missing software is installed
# (Debian packages via apt-get, Kafka jars via Maven); then the script waits until each is ready.
#
#   kafka         127.0.0.1:9092 (PLAINTEXT), controller 127.0.0.1:9093
#   postgres      127.0.0.1:5432, user postgres, no password, database "lunch"
#   redis         127.0.0.1:6379
#   kafka-secure  a second, separate broker (same jars): 127.0.0.1:9094 SASL_SSL (SCRAM-SHA-512 users admin, worker,
#                 backend), 127.0.0.1:9096 SSL with client certificates (CN=worker -> User:worker), controller
#                 127.0.0.1:9095 (SSL, the node's own certificate only); ACLs from scripts/kafka/acls.txt
#   redis-tls     a second redis-server, TLS only on 127.0.0.1:6380, ACL user "worker", the default user off
#
# The secured two take certificates from a private test CA ($SVC_HOME/tls/ca.crt) and keep random passwords (made
# once, mode 600). What a client needs is written, mode 600, as KEY=VALUE lines (no quotes, no export) to
#   $SVC_HOME/kafka-secure/client.env   SECURE_KAFKA_* (bootstraps, CA and untrusted CA, client cert/key, the three
#                                       users and their passwords)
#   $SVC_HOME/redis-tls/client.env      SECURE_REDIS_URL (rediss://worker:...@127.0.0.1:6380/0), _CA_FILE, _USER,
#                                       _PASSWORD
# Nothing secret is printed.
#
# Kafka jars, data and logs (and redis' files) live outside the repo so fresh clones reuse them:
#   $SVC_HOME = ${LUNCH_SERVICES_HOME:-$HOME/.cache/lunch-streams}
# Environment: LUNCH_SERVICES_HOME, PYTHON (interpreter for the Kafka readiness probes; default: the
# repo's .venv if present, else python3), KAFKA_HEAP_OPTS (default "-Xms128m -Xmx512m"), KAFKA_SECURE_HEAP_OPTS
# (default "-Xms64m -Xmx384m"), SERVICES_WAIT_SECONDS (readiness timeout per service, default 120).
#
# Meant for a local dev/test machine or CI runner only (PostgreSQL trusts loopback connections; the secured
# services' keys and passwords sit unencrypted in files only root/the owner can read).
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
ALL_SERVICES=(kafka postgres redis kafka-secure redis-tls)

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

# stop_pid NAME PID: SIGTERM to PID, then SIGKILL if it is still alive after 60 s; dies if even that fails.
stop_pid() {
    local name="$1" pid="$2"
    log "$name: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 60 bash -c "! kill -0 $pid 2>/dev/null"; then
        log "$name: still running after 60s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || die "could not stop $name pid $pid"
    fi
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

# kafka_java_cmd HEAP_OPTS [CONF_DIR LOGS_DIR]: sets KJAVA to the java command line (without the main class);
# log4j config and logs of the plaintext broker unless given (kafka-secure passes its own).
kafka_java_cmd() {
    local heap conf="${2:-$KAFKA_CONF}" logs="${3:-$KAFKA_LOGS}"
    read -r -a heap <<<"$1"
    KJAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$conf/log4j.properties" "-Dkafka.logs.dir=$logs"
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
    stop_pid kafka "$pid"
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

# ---------------------------------------------------------------------------------------------- private CA (TLS)
# One private CA signs the certificates of both secured services (kafka-secure, redis-tls): the CA file in their
# client.env is the same. A second, unrelated CA (untrusted-ca.crt) is there for negative tests: nothing the
# services use is signed by it (only a spare client certificate, to show the mTLS listener refuses it).
# Keys are EC P-256, unencrypted PEM (mode 600); certificates valid CERT_DAYS (10 years) so a kept machine does
# not see them expire; a certificate within 30 days of its end is made again.

TLS_DIR="$SVC_HOME/tls"
CA_CRT="$TLS_DIR/ca.crt"
CA_KEY="$TLS_DIR/ca.key"
UNTRUSTED_CA_CRT="$TLS_DIR/untrusted-ca.crt"
UNTRUSTED_CA_KEY="$TLS_DIR/untrusted-ca.key"
TLS_CNF="$TLS_DIR/openssl.cnf"
CERT_DAYS=3650

# The openssl config: sections for the CAs, server certificates (SAN IP:127.0.0.1, DNS:localhost; usable as a TLS
# client too, for the Kafka node's own broker -> controller connection) and client certificates.
TLS_OPENSSL_CNF='[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid'

# random_secret: 32 url-safe characters ([A-Za-z0-9_-], 24 random bytes in base64url).
random_secret() {
    head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# secret FILE: print the secret kept in FILE (mode 600), making it first if there is none.
secret() {
    if [[ ! -s "$1" ]]; then
        (umask 077 && random_secret >"$1.tmp") && mv "$1.tmp" "$1"
    fi
    cat "$1"
}

# write_private FILE: stdin to FILE (mode 600), atomically.
write_private() {
    (umask 077 && cat >"$1.tmp") && mv "$1.tmp" "$1"
}

tls_need_openssl() {
    command -v openssl >/dev/null || apt_install openssl
}

# tls_new_key FILE: a new EC P-256 private key (PEM, unencrypted, mode 600).
tls_new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

# tls_new_ca KEY CERT COMMON_NAME: a self-signed CA.
tls_new_ca() {
    tls_new_key "$1" || return 1
    openssl req -new -x509 -key "$1" -subj "/CN=$3" -days "$CERT_DAYS" -sha256 \
        -config "$TLS_CNF" -extensions ca -out "$2" 2>/dev/null
}

# tls_issue server|client COMMON_NAME KEY CERT [CA_CERT CA_KEY]: a new key and a certificate for it, signed by
# the private CA (or the given one). The subject is only CN=<name> (Kafka maps it to User:<name>).
tls_issue() {
    local kind="$1" cn="$2" key="$3" crt="$4" ca_crt="${5:-$CA_CRT}" ca_key="${6:-$CA_KEY}"
    tls_new_key "$key" || return 1
    openssl req -new -key "$key" -subj "/CN=$cn" -config "$TLS_CNF" 2>/dev/null \
        | openssl x509 -req -CA "$ca_crt" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
            -days "$CERT_DAYS" -sha256 -extfile "$TLS_CNF" -extensions "$kind" -out "$crt" 2>/dev/null
}

# tls_cert_ok CERT [CA_CERT]: CERT is signed by the CA (default: the private CA) and valid for 30 more days.
tls_cert_ok() {
    [[ -s "$1" ]] || return 1
    openssl verify -CAfile "${2:-$CA_CRT}" "$1" >/dev/null 2>&1 \
        && openssl x509 -checkend $((30 * 86400)) -noout -in "$1" >/dev/null 2>&1
}

# tls_ensure_ca: the private CA and the untrusted one, made (again, from scratch) unless both are complete.
tls_ensure_ca() {
    if [[ -s "$CA_KEY" && -s "$UNTRUSTED_CA_KEY" && "$(cat "$TLS_CNF" 2>/dev/null)" == "$TLS_OPENSSL_CNF" ]] \
            && tls_cert_ok "$CA_CRT" && tls_cert_ok "$UNTRUSTED_CA_CRT" "$UNTRUSTED_CA_CRT"; then
        return 0
    fi
    tls_need_openssl
    log "  making the private test CA in $TLS_DIR (and an unrelated one, untrusted-ca.crt, for negative tests)"
    # Made aside and moved in whole, so a half-made CA is never used. Certificates signed by an earlier CA no
    # longer verify: each service then makes its own again.
    rm -rf "$TLS_DIR.tmp"
    install -d -m 700 "$TLS_DIR.tmp"
    printf '%s\n' "$TLS_OPENSSL_CNF" >"$TLS_DIR.tmp/openssl.cnf"
    TLS_CNF="$TLS_DIR.tmp/openssl.cnf" tls_new_ca "$TLS_DIR.tmp/ca.key" "$TLS_DIR.tmp/ca.crt" \
        "lunch-streams local test CA" || die "openssl could not make the test CA"
    TLS_CNF="$TLS_DIR.tmp/openssl.cnf" tls_new_ca "$TLS_DIR.tmp/untrusted-ca.key" "$TLS_DIR.tmp/untrusted-ca.crt" \
        "lunch-streams UNTRUSTED test CA" || die "openssl could not make the untrusted CA"
    chmod 644 "$TLS_DIR.tmp/ca.crt" "$TLS_DIR.tmp/untrusted-ca.crt"
    chmod 755 "$TLS_DIR.tmp"
    rm -rf "$TLS_DIR"
    mv "$TLS_DIR.tmp" "$TLS_DIR"
}

# ---------------------------------------------------------------------------------------------- kafka-secure
# A second Kafka broker (same jars as "kafka"), secured as in production: TLS on every listener, SCRAM-SHA-512 users,
# mutual TLS, ACLs. Its listeners and settings: scripts/kafka/server-secure.properties.template; its ACLs:
# scripts/kafka/acls.txt. Everything it has lives in $SVC_HOME/kafka-secure:
#   secrets/   admin|worker|backend.password (SCRAM users, made at format time), store.password (keystores); 600
#   tls/       broker.crt/.key (CN=broker, SAN IP:127.0.0.1,DNS:localhost), broker.keystore.p12, truststore.p12,
#              worker-client.crt/.key (CN=worker, for the mTLS listener), untrusted-client.crt/.key (CN=worker but
#              signed by the untrusted CA: refused)
#   config/    server.properties, admin.properties (AclCommand's client config), log4j.properties; 600
#   data/ logs/ kafka.pid
#   client.env what tests read (mode 600; KEY=VALUE lines, no quotes): see ks_write_env
# A home missing any of that (a half-finished earlier run, a lost password, a certificate from an older CA) is
# made again from scratch (new passwords, empty data). A changed template only takes effect on a stop + start.

KS_HOME="$SVC_HOME/kafka-secure"
KS_DATA="$KS_HOME/data"
KS_LOGS="$KS_HOME/logs"
KS_CONF="$KS_HOME/config"
KS_TLS="$KS_HOME/tls"
KS_SECRETS="$KS_HOME/secrets"
KS_PID="$KS_HOME/kafka.pid"
KS_OUT="$KS_LOGS/kafka.out"
KS_ENV="$KS_HOME/client.env"
KS_COMPLETE="$KS_HOME/.complete"
KS_ACLS_FILE="$KAFKA_SRC/acls.txt"
KS_ACLS_STAMP="$KS_HOME/acls.applied"
KS_SASL_PORT=9094
KS_CONTROLLER_PORT=9095
KS_MTLS_PORT=9096
KS_USERS=(admin worker backend)

ks_pid() {
    local pid=""
    if [[ -s "$KS_PID" ]]; then
        pid="$(cat "$KS_PID")"
        if [[ -n "$pid" && "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *kafka.Kafka*"$KS_CONF/server.properties"* ]]; then
            printf '%s\n' "$pid"; return 0
        fi
    fi
    pid="$(pgrep -o -f "kafka\.Kafka $KS_CONF/server.properties" 2>/dev/null || true)"
    [[ -n "$pid" ]] && { printf '%s\n' "$pid"; return 0; }
    return 1
}

ks_any_port_open() {
    port_open "$KS_SASL_PORT" || port_open "$KS_CONTROLLER_PORT" || port_open "$KS_MTLS_PORT"
}

ks_home_complete() {
    [[ -f "$KS_COMPLETE" && -f "$KS_DATA/meta.properties" ]] || return 1
    local f
    for f in "$KS_SECRETS"/{admin,worker,backend,store}.password \
            "$KS_TLS"/{broker.keystore.p12,truststore.p12,worker-client.key,untrusted-client.key}; do
        [[ -s "$f" ]] || return 1
    done
    tls_cert_ok "$KS_TLS/broker.crt" && tls_cert_ok "$KS_TLS/worker-client.crt" \
        && tls_cert_ok "$KS_TLS/untrusted-client.crt" "$UNTRUSTED_CA_CRT"
}

# ks_render_config DIR: server.properties, admin.properties and log4j.properties into DIR (mode 600).
ks_render_config() {
    local dir="$1" store admin
    store="$(cat "$KS_SECRETS/store.password")"
    admin="$(cat "$KS_SECRETS/admin.password")"
    sed -e "s|@DATA_DIR@|$KS_DATA|g" -e "s|@TLS_DIR@|$KS_TLS|g" \
        -e "s|@STORE_PASSWORD@|$store|g" -e "s|@ADMIN_PASSWORD@|$admin|g" \
        "$KAFKA_SRC/server-secure.properties.template" | write_private "$dir/server.properties"
    write_private "$dir/admin.properties" <<PROPS
# The SCRAM admin over SASL_SSL, for kafka.admin.AclCommand --command-config (written by scripts/services.sh).
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
ssl.truststore.type=PKCS12
ssl.truststore.location=$KS_TLS/truststore.p12
ssl.truststore.password=$store
ssl.endpoint.identification.algorithm=https
PROPS
    cp "$KAFKA_SRC/log4j.properties" "$dir/log4j.properties"
}

# True if the config the broker runs with is the one the templates give now.
ks_config_current() {
    local f
    rm -rf "$KS_CONF.new"
    install -d -m 700 "$KS_CONF.new"
    ks_render_config "$KS_CONF.new"
    for f in server.properties admin.properties log4j.properties; do
        cmp -s "$KS_CONF/$f" "$KS_CONF.new/$f" || { rm -rf "$KS_CONF.new"; return 1; }
    done
    rm -rf "$KS_CONF.new"
}

# Everything the secured broker needs before its first start, from scratch: secrets, certificates, keystores,
# config, formatted storage with the SCRAM users. The .complete stamp goes last.
ks_build_home() {
    log "  kafka-secure: making $KS_HOME from scratch (passwords, certificates, keystores, storage with SCRAM users)"
    rm -rf "$KS_HOME"
    mkdir -p "$KS_DATA" "$KS_LOGS"
    install -d -m 700 "$KS_HOME" "$KS_SECRETS" "$KS_TLS" "$KS_CONF"
    local u store
    for u in "${KS_USERS[@]}" store; do secret "$KS_SECRETS/$u.password" >/dev/null; done
    store="$(cat "$KS_SECRETS/store.password")"

    tls_issue server broker "$KS_TLS/broker.key" "$KS_TLS/broker.crt" || die "openssl could not make the broker certificate"
    tls_issue client worker "$KS_TLS/worker-client.key" "$KS_TLS/worker-client.crt" \
        || die "openssl could not make the worker's client certificate"
    tls_issue client worker "$KS_TLS/untrusted-client.key" "$KS_TLS/untrusted-client.crt" \
        "$UNTRUSTED_CA_CRT" "$UNTRUSTED_CA_KEY" || die "openssl could not make the untrusted client certificate"
    # The broker's keystore: its key, certificate and the CA (the chain it presents). The truststore: the CA alone,
    # made by keytool (a PKCS12 of openssl 3.0 without a key is not a Java truststore).
    (umask 077 && openssl pkcs12 -export -name broker -inkey "$KS_TLS/broker.key" -in "$KS_TLS/broker.crt" \
        -certfile "$CA_CRT" -out "$KS_TLS/broker.keystore.p12" -passout "file:$KS_SECRETS/store.password") \
        || die "openssl could not make the broker keystore"
    (umask 077 && keytool -importcert -noprompt -alias lunch-streams-ca -file "$CA_CRT" -storetype PKCS12 \
        -keystore "$KS_TLS/truststore.p12" -storepass:file "$KS_SECRETS/store.password" >"$KS_LOGS/keytool.log" 2>&1) \
        || die "keytool could not make the truststore" "$KS_LOGS/keytool.log"

    ks_render_config "$KS_CONF"
    local cluster_id="-" scram=()
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    # The SCRAM credentials go into the first metadata records. (The passwords are on StorageTool's command line for
    # the second it runs: there is no file option. Local test machine only.)
    for u in "${KS_USERS[@]}"; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(cat "$KS_SECRETS/$u.password")]")
    done
    kafka_java_cmd "-Xmx256m" "$KS_CONF" "$KS_LOGS"
    "${KJAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KS_CONF/server.properties" "${scram[@]}" \
        >"$KS_LOGS/format.log" 2>&1 || die "kafka-secure: storage format failed" "$KS_LOGS/format.log"
    touch "$KS_COMPLETE"
}

# True once the secured broker answers a metadata request from the SCRAM admin over SASL_SSL, the CA verifying its
# certificate and host name. Without aiokafka (a fresh machine, before scripts/bootstrap.sh), a TLS handshake
# verified by the CA plus an ApiVersions answer on the SASL_SSL port; the ACL step then logs in as the admin.
ks_usable() {
    port_open "$KS_SASL_PORT" || return 1
    KS_PROBE_PASSWORD="$(cat "$KS_SECRETS/admin.password" 2>/dev/null)" \
        timeout 20 "$(find_python)" - "$HOST" "$KS_SASL_PORT" "$CA_CRT" <<'PY' >/dev/null 2>&1
import os, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    import asyncio
    from aiokafka.client import AIOKafkaClient
    from aiokafka.helpers import create_ssl_context
except ImportError:
    import socket, ssl, struct
    ctx = ssl.create_default_context(cafile=cafile)
    client_id = b"services.sh"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
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
    client = AIOKafkaClient(
        bootstrap_servers=f"{host}:{port}", request_timeout_ms=5000, security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
        sasl_plain_password=os.environ["KS_PROBE_PASSWORD"], ssl_context=create_ssl_context(cafile=cafile),
    )
    try:
        await client.bootstrap()
        md = await client.fetch_all_metadata()
        return bool(md.brokers()) and md.controller is not None
    finally:
        await client.close()

sys.exit(0 if asyncio.run(main()) else 1)
PY
}

# ACLs from scripts/kafka/acls.txt, added with kafka.admin.AclCommand as the admin; skipped when this very list was
# added to this very broker already (acls.applied, in the broker's home: a rebuilt home has none). Lines with the
# same principal, resource type, pattern type and operations share one AclCommand run (one JVM start each).
ks_apply_acls() {
    local want
    want="$(sha256sum <"$KS_ACLS_FILE" | cut -c1-16)"
    [[ "$(cat "$KS_ACLS_STAMP" 2>/dev/null)" == "$want" ]] && return 0
    local -A names=()
    local -a order=()
    local principal rtype ptype name ops key line=0
    while read -r principal rtype ptype name ops rest; do
        line=$((line + 1))
        [[ -z "$principal" || "$principal" == \#* ]] && continue
        [[ -n "$ops" && -z "$rest" && "$principal" == User:* ]] \
            || die "$KS_ACLS_FILE line $line: want 'User:<name> <type> <literal|prefixed> <name> <Op,Op>'"
        case "$rtype" in topic|group|cluster|transactional-id) ;; *) die "$KS_ACLS_FILE line $line: resource type $rtype?" ;; esac
        case "$ptype" in literal|prefixed) ;; *) die "$KS_ACLS_FILE line $line: pattern type $ptype?" ;; esac
        key="$principal $rtype $ptype $ops"
        [[ -n "${names[$key]+x}" ]] || order+=("$key")
        names[$key]+=" $name"
    done <"$KS_ACLS_FILE"
    log "  kafka-secure: adding the ACLs of scripts/kafka/acls.txt"
    : >"$KS_LOGS/acls.log"
    kafka_java_cmd "-Xmx128m -XX:TieredStopAtLevel=1" "$KS_CONF" "$KS_LOGS"
    local -a args pids=()
    local i op n
    for i in "${!order[@]}"; do
        key="${order[$i]}"
        read -r principal rtype ptype ops <<<"$key"
        args=(--bootstrap-server "$HOST:$KS_SASL_PORT" --command-config "$KS_CONF/admin.properties"
            --add --allow-principal "$principal" --resource-pattern-type "$ptype")
        for op in ${ops//,/ }; do args+=(--operation "$op"); done
        for n in ${names[$key]}; do
            case "$rtype" in cluster) args+=(--cluster) ;; *) args+=("--$rtype" "$n") ;; esac
        done
        log "    $principal $rtype ($ptype)${names[$key]}: $ops"
        # The runs are independent: in parallel, each with its own log.
        run_closed "${KJAVA[@]}" kafka.admin.AclCommand "${args[@]}" >"$KS_LOGS/acls.$i.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed=1
        cat "$KS_LOGS/acls.$i.log" >>"$KS_LOGS/acls.log"
        rm -f "$KS_LOGS/acls.$i.log"
    done
    (( !failed )) || die "kafka-secure: adding the ACLs failed" "$KS_LOGS/acls.log"
    printf '%s\n' "$want" >"$KS_ACLS_STAMP"
}

# client.env: what a test (or a worker run by hand) needs to reach the secured broker. Rewritten on every start.
ks_write_env() {
    write_private "$KS_ENV" <<ENV
SECURE_KAFKA_SASL_BOOTSTRAP=$HOST:$KS_SASL_PORT
SECURE_KAFKA_MTLS_BOOTSTRAP=$HOST:$KS_MTLS_PORT
SECURE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
SECURE_KAFKA_CA_FILE=$CA_CRT
SECURE_KAFKA_UNTRUSTED_CA_FILE=$UNTRUSTED_CA_CRT
SECURE_KAFKA_CLIENT_CERT_FILE=$KS_TLS/worker-client.crt
SECURE_KAFKA_CLIENT_KEY_FILE=$KS_TLS/worker-client.key
SECURE_KAFKA_UNTRUSTED_CLIENT_CERT_FILE=$KS_TLS/untrusted-client.crt
SECURE_KAFKA_UNTRUSTED_CLIENT_KEY_FILE=$KS_TLS/untrusted-client.key
SECURE_KAFKA_WORKER_USER=worker
SECURE_KAFKA_WORKER_PASSWORD=$(cat "$KS_SECRETS/worker.password")
SECURE_KAFKA_BACKEND_USER=backend
SECURE_KAFKA_BACKEND_PASSWORD=$(cat "$KS_SECRETS/backend.password")
SECURE_KAFKA_ADMIN_USER=admin
SECURE_KAFKA_ADMIN_PASSWORD=$(cat "$KS_SECRETS/admin.password")
ENV
}

kafka_secure_start() {
    tls_ensure_ca
    local pid=""
    pid="$(ks_pid || true)"
    if ! ks_home_complete; then
        if [[ -n "$pid" ]]; then
            log "kafka-secure: its home is incomplete, stopping pid $pid to make it again"
            kafka_secure_stop
            pid=""
        fi
        ks_any_port_open && die "port $KS_SASL_PORT, $KS_CONTROLLER_PORT or $KS_MTLS_PORT (kafka-secure) is taken by another process"
        kafka_fetch_libs
        ks_build_home
    elif [[ -n "$pid" ]] && ! ks_config_current; then
        # Not restarted here: another checkout with other templates sharing this home would restart it under the
        # tests of the first.
        log "kafka-secure: note: its config templates changed since it started; to apply them: $0 stop kafka-secure, then start"
    fi
    if [[ -n "$pid" ]]; then
        if ! ks_usable; then
            # Our broker is alive but not answering yet (still starting or recovering): wait for it.
            log "kafka-secure: process $pid is starting, waiting for it"
            ks_wait_usable "$pid"
        fi
        log "kafka-secure: already running on $HOST:$KS_SASL_PORT (SASL_SSL) and $HOST:$KS_MTLS_PORT (mTLS), reusing it"
    else
        ks_any_port_open && die "port $KS_SASL_PORT, $KS_CONTROLLER_PORT or $KS_MTLS_PORT (kafka-secure) is taken by another process"
        log "kafka-secure: starting Kafka $(kafka_version) on $HOST:$KS_SASL_PORT (SASL_SSL) and $HOST:$KS_MTLS_PORT (mTLS)"
        kafka_fetch_libs
        ks_render_config "$KS_CONF"
        : >"$KS_OUT"
        if [[ -f "$KS_LOGS/server.log" ]]; then mv -f "$KS_LOGS/server.log" "$KS_LOGS/server.log.prev"; fi
        rm -f "$KS_PID"
        kafka_java_cmd "${KAFKA_SECURE_HEAP_OPTS:--Xms64m -Xmx384m}" "$KS_CONF" "$KS_LOGS"
        # As for "kafka": setsid + nohup, inherited fds closed, the inner bash writes its pid (java's, by exec).
        # shellcheck disable=SC2016  # $$, $0 and $@ are for the inner bash
        setsid nohup bash -c "$CLOSE_FDS"'; echo $$ >"$0"; exec "$@"' "$KS_PID" \
            "${KJAVA[@]}" kafka.Kafka "$KS_CONF/server.properties" </dev/null >>"$KS_OUT" 2>&1 &
        wait_until 10 test -s "$KS_PID" || die "kafka-secure launcher did not write $KS_PID" "$KS_OUT"
        pid="$(cat "$KS_PID")"
        ks_wait_usable "$pid"
        log "kafka-secure: ready on $HOST:$KS_SASL_PORT (SASL_SSL, SCRAM-SHA-512) and $HOST:$KS_MTLS_PORT (mTLS) (pid $pid)"
    fi
    ks_apply_acls
    ks_write_env
    log "kafka-secure: clients' settings in $KS_ENV"
}

# ks_wait_usable PID: wait until the secured broker is usable; die if PID exits or time runs out.
ks_wait_usable() {
    local pid="$1" deadline=$((SECONDS + WAIT_SECONDS))
    until ks_usable; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$KS_PID"
            die "kafka-secure exited during startup (to start from scratch: rm -rf $KS_HOME)" \
                "$KS_OUT" "$KS_LOGS/server.log"
        fi
        (( SECONDS < deadline )) || die "kafka-secure not ready after ${WAIT_SECONDS}s (pid $pid still running)" \
            "$KS_OUT" "$KS_LOGS/server.log"
        sleep 0.5
    done
}

kafka_secure_stop() {
    local pid
    if ! pid="$(ks_pid)"; then
        rm -f "$KS_PID"
        if ks_any_port_open; then
            log "kafka-secure: $HOST:$KS_SASL_PORT was not started by this script, leaving it running"
        else
            log "kafka-secure: not running"
        fi
        return 0
    fi
    stop_pid kafka-secure "$pid"
    rm -f "$KS_PID"
    log "kafka-secure: stopped"
}

kafka_secure_status() {
    local pid=""
    pid="$(ks_pid || true)"
    if port_open "$KS_SASL_PORT"; then
        log "kafka-secure: up on $HOST:$KS_SASL_PORT (SASL_SSL) and $HOST:$KS_MTLS_PORT (mTLS)${pid:+ (pid $pid, Kafka $(kafka_version))}; clients' settings in $KS_ENV"
    elif [[ -n "$pid" ]]; then
        log "kafka-secure: starting (pid $pid, port $KS_SASL_PORT not open yet)"; return 1
    else
        log "kafka-secure: down"; return 1
    fi
}

# ---------------------------------------------------------------------------------------------- redis-tls
# A second redis-server, TLS only on 127.0.0.1:6380 (no plaintext port), certificate from the private CA (SAN
# IP:127.0.0.1, DNS:localhost; clients are not asked for one), no persistence, ACL user "worker" with a random
# password, the default user disabled. Its files: $SVC_HOME/redis-tls (redis.conf holds the password: mode 600).
# The worker's rights: keys lunch:* and recommendations:*, every pub/sub channel, every command but @dangerous
# ones. That covers what the worker sends: GET/SET/HMGET/HSET/pipelines, and its Lua scripts (EVALSHA, EVAL on
# NOSCRIPT, SCRIPT LOAD: @scripting, not @dangerous; a script's redis.call is checked against the same keys).
# @dangerous takes away FLUSHALL/FLUSHDB, KEYS, CONFIG, SHUTDOWN, DEBUG, MONITOR, INFO, CLIENT KILL and the like.
# Stopping it is by signal (SIGTERM to the pid in redis.pid): no user may SHUTDOWN.

RT_HOME="$SVC_HOME/redis-tls"
RT_PORT=6380
RT_CONF="$RT_HOME/redis.conf"
RT_PIDFILE="$RT_HOME/redis.pid"
RT_LOG="$RT_HOME/redis.log"
RT_ENV="$RT_HOME/client.env"
RT_USER=worker

rt_home_complete() {
    [[ -s "$RT_HOME/worker.password" && -s "$RT_HOME/redis.key" ]] && tls_cert_ok "$RT_HOME/redis.crt"
}

rt_render_conf() {
    write_private "$1" <<CONF
# redis-tls of lunch-streams scripts/services.sh (local dev/test machine only). Written on every start.
bind $HOST
protected-mode yes
port 0
tls-port $RT_PORT
tls-cert-file $RT_HOME/redis.crt
tls-key-file $RT_HOME/redis.key
tls-ca-cert-file $CA_CRT
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
daemonize yes
dir $RT_HOME
pidfile $RT_PIDFILE
logfile $RT_LOG
save ""
appendonly no
user default off resetpass resetkeys resetchannels -@all
user $RT_USER on >$(cat "$RT_HOME/worker.password") ~lunch:* ~recommendations:* &* +@all -@dangerous
CONF
}

# The pid of our redis-tls (from its pid file, if that process is a redis-server on our port).
rt_pid() {
    local pid
    [[ -s "$RT_PIDFILE" ]] || return 1
    pid="$(cat "$RT_PIDFILE")"
    [[ -n "$pid" && "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *redis-server*":$RT_PORT"* ]] || return 1
    printf '%s\n' "$pid"
}

# PING as the worker over TLS, verifying the server against the CA (the password goes by environment).
rt_ping() {
    [[ "$(REDISCLI_AUTH="$(cat "$RT_HOME/worker.password" 2>/dev/null)" timeout 3 redis-cli --no-auth-warning \
        --tls --cacert "$CA_CRT" -h "$HOST" -p "$RT_PORT" --user "$RT_USER" ping 2>/dev/null)" == PONG ]]
}

rt_write_env() {
    local pw
    pw="$(cat "$RT_HOME/worker.password")"
    write_private "$RT_ENV" <<ENV
SECURE_REDIS_URL=rediss://$RT_USER:$pw@$HOST:$RT_PORT/0
SECURE_REDIS_CA_FILE=$CA_CRT
SECURE_REDIS_USER=$RT_USER
SECURE_REDIS_PASSWORD=$pw
ENV
}

redis_tls_start() {
    tls_ensure_ca
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        log "redis-tls: installing"
        apt_install redis-server
    fi
    if ! rt_home_complete; then
        tls_need_openssl
        install -d -m 700 "$RT_HOME"
        secret "$RT_HOME/worker.password" >/dev/null
        tls_issue server redis-tls "$RT_HOME/redis.key" "$RT_HOME/redis.crt" \
            || die "openssl could not make the redis-tls certificate"
    fi
    rt_render_conf "$RT_CONF.new"
    local pid=""
    pid="$(rt_pid || true)"
    if port_open "$RT_PORT"; then
        if wait_until 5 rt_ping; then
            # As for kafka-secure, a changed template alone does not restart it.
            cmp -s "$RT_CONF" "$RT_CONF.new" \
                || log "redis-tls: note: its config changed since it started; to apply it: $0 stop redis-tls, then start"
            rm -f "$RT_CONF.new"
            rt_write_env
            log "redis-tls: already running on $HOST:$RT_PORT (TLS), reusing it; clients' settings in $RT_ENV"
            return 0
        fi
        [[ -n "$pid" ]] || die "something listens on $HOST:$RT_PORT but does not answer as our redis-tls"
        # Ours, but PING as the worker fails: it runs with an older password or certificate (remade since).
        log "redis-tls: pid $pid does not take the current password/certificate, restarting it"
        redis_tls_stop
    fi
    mv "$RT_CONF.new" "$RT_CONF"
    log "redis-tls: starting on $HOST:$RT_PORT (TLS only)"
    run_closed redis-server "$RT_CONF" || die "redis-server (redis-tls) failed to start" "$RT_LOG"
    wait_until "$WAIT_SECONDS" rt_ping || die "redis-tls not ready after ${WAIT_SECONDS}s" "$RT_LOG"
    rt_write_env
    log "redis-tls: ready on $HOST:$RT_PORT (TLS, user $RT_USER); clients' settings in $RT_ENV"
}

redis_tls_stop() {
    local pid
    if ! pid="$(rt_pid)"; then
        if port_open "$RT_PORT"; then
            log "redis-tls: $HOST:$RT_PORT was not started by this script, leaving it running"
        else
            log "redis-tls: not running"
        fi
        return 0
    fi
    log "redis-tls: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || die "redis-tls (pid $pid) still running after SIGTERM" "$RT_LOG"
    log "redis-tls: stopped"
}

redis_tls_status() {
    if rt_ping; then
        log "redis-tls: up on $HOST:$RT_PORT (TLS); clients' settings in $RT_ENV"
    elif port_open "$RT_PORT"; then
        log "redis-tls: $HOST:$RT_PORT open but PING as $RT_USER fails"; return 1
    else
        log "redis-tls: down"; return 1
    fi
}

# ---------------------------------------------------------------------------------------------- main

usage() {
    echo "usage: $0 start|stop|status [kafka|postgres|redis|kafka-secure|redis-tls ...]" >&2
    exit 2
}

main() {
    [[ $# -ge 1 ]] || usage
    local action="$1"; shift
    local services=("$@")
    [[ ${#services[@]} -gt 0 ]] || services=("${ALL_SERVICES[@]}")
    local s
    for s in "${services[@]}"; do
        case "$s" in kafka|postgres|redis|kafka-secure|redis-tls) ;; *) err "unknown service: $s"; usage ;; esac
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
                case "$s" in postgres) fn=pg ;; *) fn="${s//-/_}" ;; esac
                "${fn}_$action"
            done
            log "services.sh $action: done in $((SECONDS - t0))s"
            ;;
        status)
            local rc=0
            for s in "${services[@]}"; do
                case "$s" in postgres) fn=pg ;; *) fn="${s//-/_}" ;; esac
                "${fn}_status" || rc=3
            done
            return "$rc"
            ;;
        *) usage ;;
    esac
}

main "$@"
