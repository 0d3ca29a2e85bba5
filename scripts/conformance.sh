#!/usr/bin/env bash
# API conformance: schemathesis against the running app, with the app's own OpenAPI document.
#
# A fresh database (SQLite in a temporary directory; or, with CONFORMANCE_POSTGRES_URL set to a
# PostgreSQL server's URL, a new database on it, dropped afterwards), migrated and seeded
# (seed_demo, plus a few releases for delete to remove, and a product with builds and a license
# for the Client API); gunicorn on a free 127.0.0.1 port;
# then schemathesis over every operation with every check on, authenticated with the seeded
# API key, teamId set to the seeded team and the seeded ids among the generated ones.
# Exits non-zero on any failure. MAX_EXAMPLES (default 100) bounds the run; SEED=<n> repeats one.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")
SERVER_PID=
PG_DATABASE=

postgres() {  # postgres create|drop NAME: a database on CONFORMANCE_POSTGRES_URL's server
  "$BIN/python" - "$CONFORMANCE_POSTGRES_URL" "$1" "$2" <<'PY'
import sys
import psycopg
from psycopg import sql
url, action, name = sys.argv[1:]
with psycopg.connect(url, autocommit=True) as connection:
    verb = "CREATE DATABASE {}" if action == "create" else "DROP DATABASE IF EXISTS {} WITH (FORCE)"
    connection.execute(sql.SQL(verb).format(sql.Identifier(name)))
PY
}

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$PG_DATABASE" ]]; then
    postgres drop "$PG_DATABASE" || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The app's settings come only from here, never from the caller's environment.
unset REDIS_URL AWS_STORAGE_BUCKET_NAME AWS_S3_ENDPOINT_URL NUM_PROXIES ALLOWED_HOSTS
export DJANGO_SETTINGS_MODULE=lukittu.settings
if [[ -n "${CONFORMANCE_POSTGRES_URL:-}" ]]; then
  PG_DATABASE="conformance_$$"
  postgres create "$PG_DATABASE"
  export DATABASE_URL="${CONFORMANCE_POSTGRES_URL%/*}/$PG_DATABASE"
else
  export DATABASE_URL="sqlite:///$WORK/db.sqlite3"
fi
export MEDIA_ROOT="$WORK/media"
export SECRET_KEY=conformance-only-secret-key
export TEAM_KEYS_SECRET=conformance-only-team-keys-secret
export DEBUG=false
export SECURE_SSL_REDIRECT=false  # schemathesis talks plain HTTP to gunicorn
export LOG_LEVEL=WARNING
# The run sends thousands of requests with one key; at the default limit nearly every response
# would be the (documented) 429, so the limits are raised for it (the Client API's too: one
# address, one license key; and the failed authentications that the auth checks send, all from
# one address).
export DEV_API_RATE=1000000/minute
export DEV_API_AUTH_FAILURE_RATE=1000000/minute
export CLIENT_IP_RATE=1000000/minute
export CLIENT_LICENSE_RATE=1000000/minute

echo "== conformance: database ${DATABASE_URL%%://*} and demo team, files in $WORK"
"$BIN/python" manage.py migrate --noinput >/dev/null
"$BIN/python" manage.py seed_demo --json >"$WORK/seed.json"

PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
echo "== conformance: gunicorn on $BASE"
# Newer gunicorn opens a control socket at one fixed path under $HOME; runs side by side (on
# SQLite and on PostgreSQL, say) would fight over it.
NO_CONTROL_SOCKET=$("$BIN/python" -c 'from gunicorn.config import Config; print("--no-control-socket" if "control_socket_disable" in Config().settings else "")')
"$BIN/gunicorn" lukittu.wsgi --bind "127.0.0.1:$PORT" --workers 2 --timeout 60 \
  --error-logfile "$WORK/gunicorn.log" ${NO_CONTROL_SOCKET:+"$NO_CONTROL_SOCKET"} &
SERVER_PID=$!
for _ in $(seq 1 150); do
  "$BIN/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$BASE/api/schema/" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/gunicorn.log"; exit 1; }
  sleep 0.2
done

# The seeded ids as schemathesis dictionaries, and releases for delete (made through the API).
"$BIN/python" scripts/conformance_setup.py "$BASE" "$WORK"
cp scripts/schemathesis.toml "$WORK/schemathesis.toml"
CONFORMANCE_TEAM_ID=$("$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["teamId"])' <"$WORK/seed.json")
CONFORMANCE_API_KEY=$("$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])' <"$WORK/seed.json")
export CONFORMANCE_TEAM_ID CONFORMANCE_API_KEY
# The hooks encrypt the classloader's session keys with it, as a loader does.
export CONFORMANCE_PUBLIC_KEY="$WORK/team-public-key.pem"

echo "== conformance: schemathesis (all checks, at most $MAX_EXAMPLES examples per operation)"
status=0
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=conformance_hooks \
  "$BIN/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/api/schema/?format=json" \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --generation-database none \
  ${SEED:+--seed "$SEED"} \
  --no-color || status=$?

if [[ $status -ne 0 ]]; then
  echo "== conformance: FAILED; server log:"
  tail -n 200 "$WORK/gunicorn.log"
fi
exit $status
