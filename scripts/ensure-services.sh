#!/usr/bin/env bash
# Make sure the services the test suite talks to answer: PostgreSQL, Redis, RabbitMQ.
#
# Addresses come from the same variables the tests read (tests/conftest.py):
#   HOTSPOT_TEST_DATABASE_ADMIN_URL  default postgresql://postgres@127.0.0.1:5432/postgres
#   HOTSPOT_TEST_REDIS_URL           default redis://127.0.0.1:6379/0
#   HOTSPOT_TEST_AMQP_URL            default amqp://guest:guest@127.0.0.1:5672/
# A local service (127.0.0.1, localhost, ::1) that does not answer is started with the
# machine's own command and waited for; a remote one is only checked. Exits non-zero with
# a message naming every service that still does not answer.
set -uo pipefail

PG_URL=${HOTSPOT_TEST_DATABASE_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${HOTSPOT_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
AMQP_URL=${HOTSPOT_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

say() { printf 'ensure-services: %s\n' "$*"; }
err() { printf 'ensure-services: %s\n' "$*" >&2; }

# parse_url URL DEFAULT_PORT -> sets HOST and PORT (userinfo, path and query dropped).
parse_url() {
    local rest=${1#*://}
    rest=${rest%%[/?#]*}
    rest=${rest##*@}
    if [[ $rest =~ ^\[([^]]*)\](:([0-9]+))?$ ]]; then      # [ipv6]:port
        HOST=${BASH_REMATCH[1]}; PORT=${BASH_REMATCH[3]:-$2}
    elif [[ $rest =~ ^([^:]*)(:([0-9]+))?$ ]]; then         # host:port
        HOST=${BASH_REMATCH[1]}; PORT=${BASH_REMATCH[3]:-$2}
    else
        HOST=$rest; PORT=$2
    fi
    # No host in a postgresql:// URL means the local default.
    [[ -n $HOST ]] || HOST=127.0.0.1
}

is_local() {
    case $1 in 127.*|localhost|::1|0.0.0.0) return 0 ;; *) return 1 ;; esac
}

# answers HOST PORT: true when a TCP connection opens (bash's /dev/tcp, 3 s at most).
answers() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# wait_for HOST PORT SECONDS
wait_for() {
    local deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        answers "$1" "$2" && return 0
        sleep 1
    done
    answers "$1" "$2"
}

start_postgres() {
    command -v pg_ctlcluster >/dev/null || { err "PostgreSQL: pg_ctlcluster is not installed (Debian package postgresql)"; return 1; }
    local version
    version=$(ls /etc/postgresql 2>/dev/null) || true
    [[ -n $version ]] || { err "PostgreSQL: no cluster under /etc/postgresql"; return 1; }
    pg_ctlcluster --skip-systemctl-redirect $version main start
}

start_redis() {
    command -v redis-server >/dev/null || { err "Redis: redis-server is not installed (Debian package redis-server)"; return 1; }
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

start_rabbitmq() {
    command -v rabbitmq-server >/dev/null || { err "RabbitMQ: rabbitmq-server is not installed (Debian package rabbitmq-server)"; return 1; }
    rabbitmq-server -detached
}

MISSING=()

# ensure NAME URL DEFAULT_PORT START_FUNCTION WAIT_SECONDS
ensure() {
    local name=$1 url=$2 start=$4 wait=$5 HOST PORT
    if [[ $url == unix://* ]]; then
        say "$name at $url (unix socket): not checked"
        return
    fi
    parse_url "$url" "$3"
    if answers "$HOST" "$PORT"; then
        say "$name answers at $HOST:$PORT"
        return
    fi
    if ! is_local "$HOST"; then
        err "$name does not answer at $HOST:$PORT (a remote service: not started here)"
        MISSING+=("$name")
        return
    fi
    if [[ $PORT != "$3" ]]; then
        err "$name does not answer at $HOST:$PORT; only the standard port $3 is started here"
        MISSING+=("$name")
        return
    fi
    say "$name does not answer at $HOST:$PORT; starting it"
    if ! $start; then
        err "$name could not be started"
        MISSING+=("$name")
        return
    fi
    if wait_for "$HOST" "$PORT" "$wait"; then
        say "$name answers at $HOST:$PORT"
    else
        err "$name was started but does not answer at $HOST:$PORT after ${wait}s"
        MISSING+=("$name")
    fi
}

ensure PostgreSQL "$PG_URL" 5432 start_postgres 30
ensure Redis "$REDIS_URL" 6379 start_redis 15
ensure RabbitMQ "$AMQP_URL" 5672 start_rabbitmq 60

if ((${#MISSING[@]})); then
    err "not available: ${MISSING[*]}. The tests need PostgreSQL, Redis and RabbitMQ;" \
        "start them or point HOTSPOT_TEST_DATABASE_ADMIN_URL, HOTSPOT_TEST_REDIS_URL," \
        "HOTSPOT_TEST_AMQP_URL at running ones."
    exit 1
fi
