#!/usr/bin/env bash
# Follows docs/production.md step by step on a fresh clone, on loopback, in a scratch folder,
# and prints how long each step took. Usage:  deploy/try-production.sh [scratch-folder]
# PAYWATCH_TRY_WATCH_SECONDS (default 30) shortens the watcher interval so the run is quick;
# in production it stays at prefect.yaml's 300 s. Everything started here is stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/paywatch-try.XXXXXX)}
WATCH=${PAYWATCH_TRY_WATCH_SECONDS:-30}
PORT=${PAYWATCH_TRY_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
T0=$(date +%s); LAST=$T0
step() { local now; now=$(date +%s); printf '[%4ss +%3ss] %s\n' $((now - T0)) $((now - LAST)) "$*"; LAST=$now; }
SERVER=; WORKER=
cleanup() {
  [ -n "$WORKER" ] && kill -TERM "$WORKER" 2>/dev/null && sleep 2 && kill -TERM "$WORKER" 2>/dev/null || true
  [ -n "$WORKER" ] && wait "$WORKER" 2>/dev/null || true
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT

step "1. clone and install into $WORK/paywatch"
git clone --quiet "$REPO" "$WORK/paywatch"
cd "$WORK/paywatch"
make setup >/dev/null
step "   installed"

step "2. settings: PAYWATCH_HOME, PREFECT_HOME, PREFECT_API_URL, analytics off"
export PAYWATCH_HOME="$WORK/home" PREFECT_HOME="$WORK/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
install -d -m 700 "$PAYWATCH_HOME" "$PAYWATCH_HOME/landing" "$PREFECT_HOME"
.venv/bin/paywatch doctor || true   # prints the settings in use (no warehouse yet: one line, exit 1)

step "3. Prefect server on 127.0.0.1:$PORT"
.venv/bin/prefect server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
until curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1; do sleep 1; done
step "   server healthy"

step "4. work pool, then every deployment of prefect.yaml (watcher every ${WATCH}s for this try)"
.venv/bin/prefect work-pool create paywatch --type process >/dev/null
sed "s/      - interval: 300/      - interval: $WATCH/" prefect.yaml > "$WORK/prefect.yaml"
.venv/bin/prefect --no-prompt deploy --all --prefect-file "$WORK/prefect.yaml" >"$WORK/deploy.log" 2>&1
.venv/bin/prefect deployment ls
step "   deployed"

step "5. worker"
.venv/bin/prefect worker start --pool paywatch >"$WORK/worker.log" 2>&1 &
WORKER=$!

step "6. Umoja drops an off-cycle run into landing; the watcher verifies it, no trigger"
cp -r data_samples/gv-300/GV-202512-OC1 "$PAYWATCH_HOME/landing/oc1"
until [ -f "$PAYWATCH_HOME/reports/GV-202512-OC1/exceptions.csv" ]; do sleep 1; done
step "   GV-202512-OC1 verified"
until [ -d "$PAYWATCH_HOME/landing/processed/oc1" ]; do sleep 1; done
grep -F oc1 "$PAYWATCH_HOME/landing-audit.tsv"

step "7. catch-up of a past period (December's regular runs, dropped late)"
for r in SIM1 SIM2; do cp -r "data_samples/gv-300/GV-202512-$r" "$PAYWATCH_HOME/landing/processed/late-$r"; done
.venv/bin/prefect deployment run backfill/backfill --params '{"start": "202512", "end": "202512"}' --watch \
  --watch-interval 2 | tail -3 || true
step "   backfill done"
.venv/bin/paywatch doctor

step "8. stop the worker (two SIGTERMs) and back up PAYWATCH_HOME"
kill -TERM "$WORKER"; sleep 2; kill -TERM "$WORKER" 2>/dev/null || true; wait "$WORKER" || true; WORKER=
tar -C "$PAYWATCH_HOME" -czf "$WORK/paywatch-home-backup.tgz" .
step "   worker stopped, backup $(du -h "$WORK/paywatch-home-backup.tgz" | cut -f1)"

step "9. stop the server"
kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
step "done: logs and backup in $WORK"
