#!/usr/bin/env bash
# `make run`: brings up PostgreSQL and NATS, builds and starts every CareLoop service, loads demo
# data and says how to call it. Ctrl-C stops everything (DETACH=1 leaves it running; `make stop`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-infra.sh
psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -q -f scripts/bootstrap-db.sql >/dev/null
scripts/stop.sh >/dev/null 2>&1 || true
echo "[run] building services and the careloop CLI" >&2
cargo build --quiet --bins

mkdir -p .run
PLANS_ADDR=127.0.0.1:50051
CARELOOP__DATABASE__URL="postgres://careloop_plans@127.0.0.1:5432/careloop" \
CARELOOP__GRPC__ADDR="$PLANS_ADDR" \
CARELOOP__METRICS__ADDR=127.0.0.1:9101 \
  nohup target/debug/careloop-plans >.run/plans.log 2>&1 &
echo $! >.run/plans.pid

CLI=target/debug/careloop
export CARELOOP_PLANS_ADDR="http://$PLANS_ADDR"
for _ in $(seq 1 60); do
  if "$CLI" health >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat .run/plans.pid)" 2>/dev/null; then
    echo "[run] plans exited; last log lines:" >&2; tail -n 20 .run/plans.log >&2; exit 1
  fi
  sleep 0.5
done
"$CLI" health >/dev/null

CARELOOP_TOKEN="$("$CLI" dev-token)"
export CARELOOP_TOKEN
echo "$CARELOOP_TOKEN" >.run/dev-token
echo "[run] loading demo data" >&2
"$CLI" demo | tee .run/demo.txt
PATIENT="$(awk '/^demo patient/ {print $3}' .run/demo.txt)"

cat <<INFO

CareLoop is running.
  plans      grpc://$PLANS_ADDR   (health: SERVING, reflection on)   metrics http://127.0.0.1:9101/metrics
  logs       .run/plans.log

Call it with the CLI (the dev token is in .run/dev-token, valid 12 h):
  export CARELOOP_TOKEN=\$(cat .run/dev-token)
  target/debug/careloop plan show --patient $PATIENT
  target/debug/careloop task list --role rn
  target/debug/careloop handoff list --role pcp

or with grpcurl, where installed:
  grpcurl -plaintext $PLANS_ADDR list
  grpcurl -plaintext -H "authorization: Bearer \$CARELOOP_TOKEN" -d '{"patient_id":"$PATIENT"}' \\
    $PLANS_ADDR careloop.plans.v1.PlansService/GetCarePlan
INFO

if [ "${DETACH:-0}" = 1 ]; then
  echo "(detached: stop with 'make stop')"
  exit 0
fi
trap 'scripts/stop.sh; exit 0' INT TERM
echo "(Ctrl-C stops the services)"
wait
