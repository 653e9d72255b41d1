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
GATEWAY_ADDR=127.0.0.1:50050
PLANS_ADDR=127.0.0.1:50051
REFERRALS_ADDR=127.0.0.1:50052
PRIOR_AUTH_ADDR=127.0.0.1:50053
NOTIFICATIONS_ADDR=127.0.0.1:50054
METRICS_ADDR=127.0.0.1:50055

# start NAME PORT METRICS_PORT [ENV=VALUE...]: one service in the background, logs in .run/NAME.log;
# its database role is careloop_<name with - as _>.
start() {
  local name="$1" port="$2" metrics="$3"
  shift 3
  # Dev mode is asked for explicitly: plaintext on loopback, the published dev key accepted.
  env "$@" \
    CARELOOP__AUTH__DEV_MODE=true \
    CARELOOP__DATABASE__URL="postgres://careloop_${name//-/_}@127.0.0.1:5432/careloop" \
    CARELOOP__GRPC__ADDR="127.0.0.1:$port" \
    CARELOOP__METRICS__ADDR="127.0.0.1:$metrics" \
    nohup "target/debug/careloop-$name" >".run/$name.log" 2>&1 &
  echo $! >".run/$name.pid"
}

# wait_healthy NAME ADDR: until grpc.health.v1 answers SERVING
wait_healthy() {
  for _ in $(seq 1 60); do
    if "$CLI" --addr "http://$2" health >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat ".run/$1.pid")" 2>/dev/null; then
      echo "[run] $1 exited; last log lines:" >&2; tail -n 20 ".run/$1.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "[run] $1 did not become healthy" >&2; exit 1
}

CLI=target/debug/careloop
export CARELOOP_GATEWAY_ADDR="http://$GATEWAY_ADDR"
export CARELOOP_PLANS_ADDR="http://$PLANS_ADDR"
export CARELOOP_REFERRALS_ADDR="http://$REFERRALS_ADDR"
export CARELOOP_PRIOR_AUTH_ADDR="http://$PRIOR_AUTH_ADDR"
export CARELOOP_NOTIFICATIONS_ADDR="http://$NOTIFICATIONS_ADDR"
export CARELOOP_METRICS_ADDR="http://$METRICS_ADDR"
start plans 50051 9101
start referrals 50052 9102 CARELOOP__REFERRALS__PLANS_ADDR="http://$PLANS_ADDR"
start prior-auth 50053 9103 CARELOOP__PRIOR_AUTH__PLANS_ADDR="http://$PLANS_ADDR"
start notifications 50054 9104 CARELOOP__NOTIFICATIONS__PLANS_ADDR="http://$PLANS_ADDR"
start metrics 50055 9105 CARELOOP__METRICS__PLANS_ADDR="http://$PLANS_ADDR"
start gateway 50050 9106 \
  CARELOOP__GATEWAY__PLANS_ADDR="http://$PLANS_ADDR" \
  CARELOOP__GATEWAY__REFERRALS_ADDR="http://$REFERRALS_ADDR" \
  CARELOOP__GATEWAY__PRIOR_AUTH_ADDR="http://$PRIOR_AUTH_ADDR" \
  CARELOOP__GATEWAY__NOTIFICATIONS_ADDR="http://$NOTIFICATIONS_ADDR"
wait_healthy plans "$PLANS_ADDR"
wait_healthy referrals "$REFERRALS_ADDR"
wait_healthy prior-auth "$PRIOR_AUTH_ADDR"
wait_healthy notifications "$NOTIFICATIONS_ADDR"
wait_healthy metrics "$METRICS_ADDR"
wait_healthy gateway "$GATEWAY_ADDR"

CARELOOP_TOKEN="$("$CLI" dev-token)"
export CARELOOP_TOKEN
echo "$CARELOOP_TOKEN" >.run/dev-token
echo "[run] loading demo data" >&2
"$CLI" demo | tee .run/demo.txt
PATIENT="$(awk '/^demo patient/ {print $3}' .run/demo.txt)"

cat <<INFO

CareLoop is running. Partners and apps call the gateway, the one door:
  gateway    grpc://$GATEWAY_ADDR       gRPC and gRPC-Web   metrics http://127.0.0.1:9106/metrics   log .run/gateway.log

Behind it (health SERVING, reflection on):
  plans      grpc://$PLANS_ADDR       metrics http://127.0.0.1:9101/metrics   log .run/plans.log
  referrals  grpc://$REFERRALS_ADDR       metrics http://127.0.0.1:9102/metrics   log .run/referrals.log
  prior-auth grpc://$PRIOR_AUTH_ADDR       metrics http://127.0.0.1:9103/metrics   log .run/prior-auth.log
  notifications grpc://$NOTIFICATIONS_ADDR    metrics http://127.0.0.1:9104/metrics   log .run/notifications.log
  metrics    grpc://$METRICS_ADDR       metrics http://127.0.0.1:9105/metrics   log .run/metrics.log

Call it with the CLI (the dev token is in .run/dev-token, valid 12 h):
  export CARELOOP_TOKEN=\$(cat .run/dev-token)
  target/debug/careloop summary --patient $PATIENT        # the one-screen summary, through the gateway
  target/debug/careloop worklist --role care_manager      # a role's open loops across services
  target/debug/careloop summary --patient $PATIENT --output json
  target/debug/careloop plan show --patient $PATIENT
  target/debug/careloop task list --role rn
  target/debug/careloop handoff list --role pcp
  target/debug/careloop loops --patient $PATIENT          # open referrals, orders, results
  target/debug/careloop referral show <referral-id>
  target/debug/careloop auth list --patient $PATIENT      # prior authorizations
  target/debug/careloop transition show <transition-id>   # its start booked transport: see loops
  target/debug/careloop inbox list --role care_manager    # items routed to a role (the token's roles)
  target/debug/careloop inbox watch --role care_manager   # pushed as they arrive; --cursor resumes
  target/debug/careloop routing list                      # the rules that fill the inboxes
  target/debug/careloop measure prior-auth --days 30       # the CMS-0057-F report
  target/debug/careloop measure payer-clocks --days 30     # each payer against its deadlines

or with grpcurl, where installed:
  grpcurl -plaintext -H "authorization: Bearer \$CARELOOP_TOKEN" -d '{"patient_id":"$PATIENT"}' \\
    $GATEWAY_ADDR careloop.gateway.v1.GatewayService/GetPatientSummary
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
