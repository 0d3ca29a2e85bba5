#!/usr/bin/env bash
# The container image and compose file, tried for real (CI runs this; it needs root):
#   1. podman, runc and mmdebstrap from Debian, podman-compose into var/container-check/venv;
#   2. a Debian bookworm base image made locally from this machine's apt sources, when missing
#      (no container registry is needed: none may be reachable);
#   3. the image, from Containerfile (layers cached in /var/lib/containers between runs);
#   4. migrate, app and worker from compose.yaml, on the host's network, against the
#      PostgreSQL and Redis on 127.0.0.1 (a database of its own, dropped afterwards);
#   5. /readyz, the image's HEALTHCHECK, a team and API key made with manage.py inside the
#      container, an Update Release with a file, a plain and a classloader download of it, and
#      a signed webhook delivered over HTTPS to a receiver on 127.0.0.1.
# Then it removes what it made (containers, volumes, the image), keeping the base image and
# the layer cache. Nothing about this machine (mirror, index, certificates) is written into
# the repository or an image layer: they are read at run time and passed as build secrets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_URL=${CONTAINER_CHECK_POSTGRES:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${CONTAINER_CHECK_REDIS:-redis://127.0.0.1:6379/14}
BASE_IMAGE=localhost/lukittu-base:bookworm
IMAGE=localhost/lukittu-releases:container-check
CACHE_TAG=localhost/lukittu-releases:container-check-cache
PROJECT=lukittu-container-check
DB=lukittu_container_check
WORK=$PWD/var/container-check
mkdir -p "$WORK"
chmod 0700 "$WORK"

say() { printf '== [%3d s] %s\n' "$SECONDS" "$*"; }
fail() { printf 'container check FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- 1. tools -----------------------------------------------------------------------------
install_tools() {
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
    || ! command -v mmdebstrap >/dev/null || ! command -v openssl >/dev/null; then
    say "installing podman, runc, mmdebstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y podman runc mmdebstrap openssl </dev/null \
      || { apt-get update && apt-get install -y podman runc mmdebstrap openssl </dev/null; }
  fi
  # Debian's podman-compose (1.0.x) cannot do network_mode: host; 1.x from PyPI can.
  if [ ! -x "$WORK/venv/bin/podman-compose" ]; then
    say "installing podman-compose into $WORK/venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet 'podman-compose>=1.1,<2'
  fi
  COMPOSE=("$WORK/venv/bin/podman-compose" -p "$PROJECT" -f compose.yaml -f "$WORK/compose.check.yaml")
}

# Podman's defaults ask for limits above this kind of host's hard limits, and crun cannot run
# on its hybrid cgroups: explicit limits, and runc.
podman_config() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(cat /proc/sys/kernel/pid_max)
  [ "$nproc" -gt 32768 ] && nproc=32768
  cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$WORK/containers.conf
}

# --- 2. the base image --------------------------------------------------------------------
build_base() {
  if podman image exists "$BASE_IMAGE"; then
    return
  fi
  say "making $BASE_IMAGE with mmdebstrap from this machine's apt sources"
  local sources=() opts=()
  [ -s /etc/apt/sources.list ] && sources+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -s "$f" ] && sources+=("$f")
  done
  [ ${#sources[@]} -gt 0 ] || fail "no apt sources on this machine"
  if apt-config dump | grep -q '^Acquire::Check-Valid-Until "false"'; then
    opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
  fi
  mmdebstrap --variant=minbase --quiet "${opts[@]}" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$WORK/base.tar" "${sources[@]}"
  podman import --quiet "$WORK/base.tar" "$BASE_IMAGE" >/dev/null
  rm -f "$WORK/base.tar"
}

# --- 3. the image -------------------------------------------------------------------------
# pip's network indexes (local file:// ones do not exist inside a build) and the CA bundle
# this machine's pip trusts, as build secrets.
pip_secrets() {
  python3 - "$WORK/pip.conf" <<'EOF'
import os, subprocess, sys

urls = {"index-url": [], "extra-index-url": []}
listed = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True)
for line in listed.stdout.splitlines():
    key, _, value = line.partition("=")
    name = key.rsplit(".", 1)[-1]
    if name in urls:
        urls[name] += value.strip("'\"").split()
for name, var in (("index-url", "PIP_INDEX_URL"), ("extra-index-url", "PIP_EXTRA_INDEX_URL")):
    urls[name] += os.environ.get(var, "").split()
lines = ["[global]", "timeout = 180"]
for name, values in urls.items():
    values = [v for v in dict.fromkeys(values) if v.startswith(("http://", "https://"))]
    if values:
        lines.append(f"{name} = {' '.join(values)}")
with open(sys.argv[1], "w") as out:
    out.write("\n".join(lines) + "\n")
EOF
  local ca
  ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
  ca=${ca:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
  cp "$ca" "$WORK/ca.pem"
}

build_image() {
  say "building $IMAGE"
  pip_secrets
  podman --runtime runc build --quiet --format docker --build-arg BASE="$BASE_IMAGE" \
    --secret id=pip_conf,src="$WORK/pip.conf" --secret id=ca_bundle,src="$WORK/ca.pem" \
    -t "$IMAGE" -f Containerfile . >/dev/null
}

# --- 4. the stack from compose.yaml, on the host's network --------------------------------
# A check-only override: host networking (CI's PostgreSQL and Redis listen on 127.0.0.1), a
# database of its own, plain HTTP on a free port, and, for the worker, a receiver on 127.0.0.1
# it may send to (WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS) whose certificate it trusts (the
# receiver's own, mounted over certifi's bundle, which the sender uses).
write_override() {
  local certifi
  certifi=$(podman run --rm --no-healthcheck --entrypoint python "$IMAGE" -c 'import certifi; print(certifi.where())')
  cat >"$WORK/compose.check.yaml" <<EOF
x-check-environment: &check-environment
  DATABASE_URL: $PG_URL/$DB
  REDIS_URL: $REDIS_URL
  ALLOWED_HOSTS: 127.0.0.1
  NUM_PROXIES: "0"
  FORWARDED_ALLOW_IPS: 127.0.0.1
  SECURE_SSL_REDIRECT: "false"
  PORT: "$APP_PORT"
  GUNICORN_BIND: 127.0.0.1:$APP_PORT
  GUNICORN_WORKERS: "2"
  WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS: "true"
  WEBHOOKS_SWEEP_SECONDS: "1"

services:
  migrate:
    network_mode: host
    environment: *check-environment
  app:
    network_mode: host
    ports: !reset []
    environment: *check-environment
  scheduler:
    network_mode: host
    environment: *check-environment
  worker:
    network_mode: host
    environment: *check-environment
    volumes:
      - $WORK/receiver.pem:$certifi:ro
EOF
}

start_receiver() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/receiver.key" -out "$WORK/receiver.pem" \
    2>/dev/null
  chmod 0644 "$WORK/receiver.pem"
  rm -rf "$WORK/hooks" && mkdir -p "$WORK/hooks"
  python3 - "$RECEIVER_PORT" "$WORK" <<'EOF' &
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, work = int(sys.argv[1]), sys.argv[2]

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received = {"headers": dict(self.headers), "body": body.decode()}
        with open(f"{work}/hooks/{self.headers['webhook-id']}.json", "w") as out:
            json.dump(received, out)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", port), Receiver)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{work}/receiver.pem", f"{work}/receiver.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
  RECEIVER_PID=$!
}

container_of() {
  podman ps --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

# manage.py in the running app container, with the stack's environment.
manage() { podman exec "$(container_of app)" python manage.py "$@"; }

fresh_database() {
  PGOPTIONS=--client-min-messages=warning psql -q "$PG_URL/postgres" -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
    -c "CREATE DATABASE $DB" >/dev/null
}

start_stack() {
  export LUKITTU_IMAGE=$IMAGE POSTGRES_PASSWORD=unused-here
  SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
  TEAM_KEYS_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  export SECRET_KEY TEAM_KEYS_SECRET
  say "migrate, app, worker and scheduler from compose.yaml (app on 127.0.0.1:$APP_PORT)"
  "${COMPOSE[@]}" run --rm --no-deps migrate >"$WORK/migrate.log" 2>&1 \
    || { cat "$WORK/migrate.log"; fail "migrate"; }
  "${COMPOSE[@]}" up -d --no-deps app worker scheduler >"$WORK/up.log" 2>&1 \
    || { cat "$WORK/up.log"; fail "compose up"; }
  for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz" 2>/dev/null && break
    sleep 1
  done
  local ready
  ready=$(curl -sS "http://127.0.0.1:$APP_PORT/readyz") || true
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); checks = r["checks"]
assert r["status"] == "ok" and set(checks) >= {"database", "cache", "storage"}, r
assert set(checks.values()) == {"ok"}, r' "$ready" 2>/dev/null \
    || { podman logs "$(container_of app)" | tail -n 30; fail "/readyz answered: $ready"; }
  say "/readyz: $ready"
  podman healthcheck run "$(container_of app)" >/dev/null || fail "the image's HEALTHCHECK"
  say "HEALTHCHECK (/healthz from inside the container): healthy"
}

# --- 5. the requests ----------------------------------------------------------------------
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; }

# POST/PUT JSON to the Developer API; prints the answer, fails on a non-2xx.
dev_json() {
  curl -fsS -X "$1" "$API$2" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "$3"
}

make_build() {
  python3 - "$WORK/build.jar" <<'EOF'
import os, sys, zipfile

with zipfile.ZipFile(sys.argv[1], "w") as jar:
    jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: com.example.Main\n")
    jar.writestr("com/example/Main.class", os.urandom(4096))
EOF
  BUILD_SHA=$(sha256sum "$WORK/build.jar" | cut -d' ' -f1)
}

team_and_key() {
  TEAM=$(manage create_team "Container check" --file-uploads)
  KEY=$(manage create_api_key "$TEAM")
  [[ $KEY =~ ^[A-Za-z0-9_.-]{20,}$ ]] || fail "create_api_key printed no key"
  API=http://127.0.0.1:$APP_PORT/api/v1/dev/teams/$TEAM
  say "team $TEAM and an API key, made by manage.py inside the app container"
}

update_release_with_file() {
  PRODUCT=$(dev_json POST /products '{"name":"Container check app"}' | field id)
  local hook
  hook=$(dev_json POST /webhooks \
    "{\"url\":\"https://127.0.0.1:$RECEIVER_PORT/hook\",\"events\":[\"release.updated\"]}")
  HOOK_SECRET=$(field secret <<<"$hook")
  RELEASE=$(curl -fsS -X POST "$API/releases" -H "Authorization: Bearer $KEY" \
    -F 'data={"version":"1.0.0","productId":"'"$PRODUCT"'","status":"DRAFT"}' | field id)
  local updated
  updated=$(curl -sS -X PUT "$API/releases/$RELEASE" -H "Authorization: Bearer $KEY" \
    -F 'data={"version":"1.0.0","productId":"'"$PRODUCT"'","status":"PUBLISHED","setAsLatest":true,"keepExistingFile":false,"branchId":null,"metadata":[],"licenseIds":[]}' \
    -F "file=@$WORK/build.jar")
  python3 - "$updated" "$BUILD_SHA" <<'EOF' || fail "Update Release answered: $updated"
import json, sys

answer, sha = json.loads(sys.argv[1]), sys.argv[2]
release = answer["data"]
assert answer["result"]["valid"] is True, answer["result"]
assert release["status"] == "PUBLISHED" and release["latest"] is True, release
assert release["file"]["sha256"] == sha and release["file"]["name"] == "build.jar", release["file"]
assert release["file"]["mainClassName"] == "com.example.Main", release["file"]
EOF
  say "Update Release with a file: PUBLISHED, latest, sha256 $BUILD_SHA"
}

client_query() {
  printf 'licenseKey=%s&productId=%s&hardwareIdentifier=container-check-%s&version=1.0.0' \
    "$LICENSE" "$PRODUCT" "$1"
}

downloads() {
  LICENSE=$(manage create_license "$TEAM" --product "$PRODUCT")
  local client=http://127.0.0.1:$APP_PORT/api/v1/client/teams/$TEAM
  curl -fsS -o "$WORK/downloaded.jar" "$client/releases/download?$(client_query plain)"
  [ "$(sha256sum "$WORK/downloaded.jar" | cut -d' ' -f1)" = "$BUILD_SHA" ] \
    || fail "the plain download is not the uploaded build"
  say "plain download: the uploaded build, byte for byte"
  # The loader's side of the classloader protocol (docs/delivery.md), run with the
  # image's Python and its cryptography package.
  podman run --rm -i --no-healthcheck --network host --entrypoint python "$IMAGE" - \
    "$client/verification/classloader?$(client_query loader)" \
    "$(manage team_public_key "$TEAM" --base64)" "$BUILD_SHA" <<'EOF' \
    || fail "classloader download"
import base64, hashlib, os, sys, urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

url, public_key, expected = sys.argv[1:4]
session_key = os.urandom(32)
oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
sealed = serialization.load_der_public_key(base64.b64decode(public_key)).encrypt(session_key, oaep)
with urllib.request.urlopen(f"{url}&sessionKey={sealed.hex()}", timeout=30) as answer:
    body = answer.read()
key, plain = hashlib.sha256(session_key.hex().encode()).digest(), b""
while body:
    size = int.from_bytes(body[:4], "big")
    frame, body = body[4 : 4 + size], body[4 + size :]
    plain += AESGCM(key).decrypt(frame[:12], frame[28:] + frame[12:28], None)
assert hashlib.sha256(plain).hexdigest() == expected, "the decrypted build differs"
EOF
  say "classloader download: decrypts to the uploaded build"
}

# The worker sends release.updated to the receiver; the Lukittu signature must verify with the
# secret the API showed once.
webhook_delivered() {
  local received=""
  for _ in $(seq 1 60); do
    received=$(find "$WORK/hooks" -name 'msg_*.json' | head -n 1)
    [ -n "$received" ] && break
    sleep 1
  done
  [ -n "$received" ] || { podman logs "$(container_of worker)" | tail -n 30; fail "no webhook arrived"; }
  python3 - "$received" "$HOOK_SECRET" "$RELEASE" <<'EOF' || fail "the webhook delivered"
import hashlib, hmac, json, sys

received, secret, release = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
headers = {name.lower(): value for name, value in received["headers"].items()}
body = received["body"].encode()
signed = headers["x-lukittu-timestamp"].encode() + b"." + body
expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
assert hmac.compare_digest(headers["x-lukittu-signature"], expected), "bad signature"
event = json.loads(body)
assert event["type"] == "release.updated" and event["data"]["id"] == release, event
EOF
  say "webhook: release.updated delivered over HTTPS to 127.0.0.1:$RECEIVER_PORT, signature verified"
}

# The scheduler's first round runs at start: the reconciler and the purges, each succeeding.
scheduler_ran() {
  local log=""
  for _ in $(seq 1 30); do
    log=$(podman logs "$(container_of scheduler)" 2>&1)
    grep -q 'deliveries and .* events deleted' <<<"$log" && break
    sleep 1
  done
  grep -q '^Scanned .* release files missing their object\.$' <<<"$log" \
    && grep -q 'expired idempotency keys deleted' <<<"$log" \
    && grep -q 'deliveries and .* events deleted' <<<"$log" \
    && ! grep -qE '^[a-z_]+ failed' <<<"$log" \
    || { printf '%s\n' "$log"; fail "the scheduler's first round"; }
  say "scheduler: reconcile_storage, purge_idempotency_keys, prune_db_task_results and purge_webhook_deliveries ran"
}

# --- clean up ----------------------------------------------------------------------------
# Whatever the project left, here or in a run that was killed before its clean-up.
remove_project() {
  local label=label=com.docker.compose.project=$PROJECT
  podman ps -aq --filter "$label" | xargs -r podman rm -f >/dev/null 2>&1
  podman pod ls -q --filter "name=pod_$PROJECT" | xargs -r podman pod rm -f >/dev/null 2>&1
  podman volume ls -q --filter "$label" | xargs -r podman volume rm -f >/dev/null 2>&1
  podman network ls -q --filter "$label" | xargs -r podman network rm -f >/dev/null 2>&1
  return 0
}

# The image's name goes; its layers stay under CACHE_TAG for the next run's build, and the
# previous run's image (another source) goes with its own layers.
keep_layer_cache() {
  podman image exists "$IMAGE" || return 0
  local previous current
  previous=$(podman image inspect --format '{{.Id}}' "$CACHE_TAG" 2>/dev/null || true)
  current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
  podman tag "$IMAGE" "$CACHE_TAG" && podman untag "$IMAGE" "$IMAGE"
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
}

# Containers, volumes and networks of the project, the receiver, the database, and the image's
# name: its layers stay as the build cache of the next run.
cleanup() {
  local status=$?
  set +e
  if [ "$status" -ne 0 ] && [ -n "$(container_of app)" ]; then
    podman logs "$(container_of app)" 2>&1 | tail -n 20
  fi
  [ -n "${RECEIVER_PID:-}" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
  [ ${#COMPOSE[@]} -gt 0 ] && [ -f "$WORK/compose.check.yaml" ] \
    && "${COMPOSE[@]}" down -v >"$WORK/down.log" 2>&1
  remove_project
  keep_layer_cache
  psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK/hooks" "$WORK/receiver.key" "$WORK/receiver.pem" "$WORK"/*.jar "$WORK/pip.conf" "$WORK/ca.pem"
  exit "$status"
}

main() {
  local started=$SECONDS
  COMPOSE=()
  trap cleanup EXIT
  install_tools
  podman_config
  remove_project
  build_base
  build_image
  APP_PORT=$(free_port)
  RECEIVER_PORT=$(free_port)
  fresh_database
  start_receiver
  write_override
  start_stack
  make_build
  team_and_key
  update_release_with_file
  downloads
  webhook_delivered
  scheduler_ran
  say "container check passed in $((SECONDS - started)) s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
