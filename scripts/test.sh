#!/usr/bin/env bash
# The one test command (README, "Test"), and what CI runs (.ci/run). In order, stopping at the first
# failure:
#   1. .venv: created if missing; tollway and its test extras installed at the exact versions of
#      constraints.txt (skipped when neither it nor pyproject.toml changed since the last install)
#   2. PostgreSQL and Redis for the tests (TOLLWAY_TEST_PG / TOLLWAY_TEST_REDIS; see services below)
#   3. ruff check .   4. ruff format --check .   5. mypy (strict, configured in pyproject.toml)
#   6. pytest, warnings as errors, with coverage (a per-file table and the total at the end)
# Arguments go to pytest: `bash scripts/test.sh -x -k redis`.
#
# Services. TOLLWAY_TEST_PG (a PostgreSQL DSN; its database is the admin one test databases are
# created from) and TOLLWAY_TEST_REDIS (a Redis URL) point at existing servers. Unset, each is:
#   - the server already answering on 127.0.0.1:5432 (user postgres, no password) / 127.0.0.1:6379;
#   - else the system's installed one, started (Debian's pg_ctlcluster / redis-server on 6379);
#   - else a throwaway one: initdb + pg_ctl (trust auth) / redis-server --save '' in a temporary
#     directory on a free port, installing Debian's postgresql / redis-server first when missing and
#     running as root with apt-get; stopped and deleted when the run ends.
# TOLLWAY_TEST_SERVICES=throwaway skips the first two: throwaway servers even when others are there.
# When none of this works it stops at once with one line naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test.sh: $*" >&2; }
die() {
  echo "test.sh: $*" >&2
  exit 1
}

# --- 1. the virtualenv, from the lock --------------------------------------------------------------
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || die "no $PY on PATH (Python >= 3.11 is needed; set PYTHON=...)"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv || die "could not create .venv with $PY (on Debian: apt-get install python3-venv)"
fi
stamp=.venv/.tollway-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing tollway[dev] at the versions of constraints.txt"
  pip=(.venv/bin/python -m pip install -qq --disable-pip-version-check -c constraints.txt)
  "${pip[@]}" pip setuptools wheel
  # no build isolation: the editable build uses the pinned setuptools just installed
  "${pip[@]}" --no-build-isolation -e '.[dev]'
  echo "$want" >"$stamp"
fi

# --- 2. PostgreSQL and Redis -------------------------------------------------------------------------
mode=${TOLLWAY_TEST_SERVICES:-auto}
case "$mode" in auto | throwaway) ;; *) die "TOLLWAY_TEST_SERVICES must be auto or throwaway, not '$mode'" ;; esac
DEFAULT_PG=postgresql://postgres@127.0.0.1:5432/postgres
DEFAULT_REDIS=redis://127.0.0.1:6379/0
tmp=""
pg_ctl_stop=()
redis_pid=""

cleanup() {
  if [ ${#pg_ctl_stop[@]} -gt 0 ]; then "${pg_ctl_stop[@]}" >/dev/null 2>&1 || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# does the server at this URL answer? (a real login / PING, 5 s at most; prints why not)
answers() {
  .venv/bin/python - "$1" "$2" <<'PY'
import asyncio, sys
kind, url = sys.argv[1], sys.argv[2]
async def main() -> None:
    if kind == "pg":
        import asyncpg
        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()
    else:
        from redis.asyncio import Redis
        client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            await client.ping()
        finally:
            await client.aclose()
try:
    asyncio.run(main())
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}".splitlines()[0])
    sys.exit(1)
PY
}
wait_for() { # kind url: up to 15 s
  for _ in $(seq 75); do answers "$1" "$2" >/dev/null && return 0; sleep 0.2; done
  return 1
}
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  say "installing Debian's $* (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >/dev/null 2>&1
}
none() { if [ "$mode" = throwaway ]; then echo "TOLLWAY_TEST_SERVICES=throwaway"; else echo "nothing answers on $1"; fi; }
workdir() { [ -n "$tmp" ] || tmp=$(mktemp -d "${TMPDIR:-/tmp}/tollway-test-services.XXXXXX"); }

pg_bindir() {
  local d
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir && return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d" && return
  done
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null && dirname "$(command -v initdb)" && return
  return 1
}

throwaway_pg() {
  local bin port user run
  bin=$(pg_bindir) || { can_apt && apt_install postgresql && bin=$(pg_bindir); } ||
    die "PostgreSQL is needed and there is none: $(none 127.0.0.1:5432), initdb/pg_ctl are not installed$(can_apt || echo ' and installing needs root with apt-get'); install PostgreSQL or set TOLLWAY_TEST_PG"
  workdir
  port=$(free_port)
  run=()
  if [ "$(id -u)" = 0 ]; then # initdb refuses to run as root
    user=postgres
    id -u "$user" >/dev/null 2>&1 || user=nobody
    mkdir -p "$tmp/pg"
    chown "$user" "$tmp/pg"
    chmod 755 "$tmp"
    run=(runuser -u "$user" --)
  fi
  say "starting a throwaway PostgreSQL ($bin) on port $port"
  ${run[@]+"${run[@]}"} "$bin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    >"$tmp/initdb.log" 2>&1 || die "initdb failed: $(tail -1 "$tmp/initdb.log")"
  ${run[@]+"${run[@]}"} "$bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/server.log" -w -t 30 start \
    -o "-p $port -k $tmp/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null 2>&1 || die "the throwaway PostgreSQL did not start: $(tail -1 "$tmp/pg/server.log" 2>/dev/null)"
  pg_ctl_stop=(${run[@]+"${run[@]}"} "$bin/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop)
  export TOLLWAY_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
}

throwaway_redis() {
  local port
  command -v redis-server >/dev/null || { can_apt && apt_install redis-server; } ||
    die "Redis is needed and there is none: $(none 127.0.0.1:6379), redis-server is not installed$(can_apt || echo ' and installing needs root with apt-get'); install redis-server or set TOLLWAY_TEST_REDIS"
  workdir
  port=$(free_port)
  mkdir -p "$tmp/redis"
  say "starting a throwaway Redis on port $port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" \
    --logfile "$tmp/redis/server.log" >/dev/null 2>&1 &
  redis_pid=$!
  export TOLLWAY_TEST_REDIS="redis://127.0.0.1:$port/0"
  wait_for redis "$TOLLWAY_TEST_REDIS" || die "the throwaway Redis did not start: $(tail -1 "$tmp/redis/server.log" 2>/dev/null)"
}

if [ -n "${TOLLWAY_TEST_PG:-}" ]; then
  why=$(answers pg "$TOLLWAY_TEST_PG") || die "TOLLWAY_TEST_PG does not answer: $why"
elif [ "$mode" = auto ] && answers pg "$DEFAULT_PG" >/dev/null; then
  export TOLLWAY_TEST_PG=$DEFAULT_PG
elif [ "$mode" = auto ] && ! port_open 5432 && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1 &&
  say "starting the system's PostgreSQL" &&
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >/dev/null 2>&1 &&
  wait_for pg "$DEFAULT_PG"; then
  export TOLLWAY_TEST_PG=$DEFAULT_PG
else
  throwaway_pg
fi

if [ -n "${TOLLWAY_TEST_REDIS:-}" ]; then
  why=$(answers redis "$TOLLWAY_TEST_REDIS") || die "TOLLWAY_TEST_REDIS does not answer: $why"
elif [ "$mode" = auto ] && answers redis "$DEFAULT_REDIS" >/dev/null; then
  export TOLLWAY_TEST_REDIS=$DEFAULT_REDIS
elif [ "$mode" = auto ] && ! port_open 6379 && command -v redis-server >/dev/null &&
  say "starting the system's Redis on 6379" &&
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/tollway-test-redis.log" >/dev/null 2>&1 &&
  wait_for redis "$DEFAULT_REDIS"; then
  export TOLLWAY_TEST_REDIS=$DEFAULT_REDIS
else
  throwaway_redis
fi
# tests/test_replicas.py kills and restarts a private redis-server: the binary is needed even when
# the Redis in use is elsewhere
command -v redis-server >/dev/null || { can_apt && apt_install redis-server; } ||
  die "redis-server is not installed (tests/test_replicas.py starts its own); install it"
redact() { sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; } # a password is not printed
say "PostgreSQL $(redact "$TOLLWAY_TEST_PG"), Redis $(redact "$TOLLWAY_TEST_REDIS")"

# --- 3-6. the checks ----------------------------------------------------------------------------------
step() {
  say "$*"
  "$@" || die "failed: $*"
}
step .venv/bin/ruff check .
step .venv/bin/ruff format --check .
step .venv/bin/mypy
say "pytest"
# not exec: the trap above stops the throwaway servers when pytest is done
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider --cov --cov-report=term:skip-covered "$@" || status=$?
exit "$status"
