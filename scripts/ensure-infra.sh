#!/usr/bin/env bash
# Makes sure the real components CareLoop needs run on this machine: PostgreSQL on 127.0.0.1:5432
# (trust auth for local development and tests) and NATS with JetStream on 127.0.0.1:4222.
# Installs the Debian packages when they are missing. Idempotent; safe to run before every command.
set -euo pipefail

log() { echo "[infra] $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {
  log "installing $*"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do
    if port_open "$1"; then return 0; fi
    sleep 0.5
  done
  log "port $1 did not open"; return 1
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  if ! port_open 5432; then
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    log "starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || $SUDO pg_ctlcluster "$version" main start
    wait_port 5432
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for passwords on TCP; local development uses trust on loopback.
    local version hba
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    log "enabling trust auth for 127.0.0.1 in $hba (development machine)"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    $SUDO sed -i '1i local all postgres trust' "$hba"
    $SUDO pg_ctlcluster "$version" main reload 2>/dev/null || $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null
  log "PostgreSQL ready on 127.0.0.1:5432"
}

ensure_nats() {
  if port_open 4222; then
    log "NATS ready on 127.0.0.1:4222"
    return
  fi
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    apt_install nats-server
  fi
  local bin store logfile
  bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  store="${CARELOOP_NATS_STORE:-/var/lib/nats-server}"
  logfile="${CARELOOP_NATS_LOG:-/var/log/nats-server.log}"
  $SUDO mkdir -p "$store"
  log "starting NATS JetStream ($store)"
  if command -v start-stop-daemon >/dev/null 2>&1; then
    $SUDO start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$logfile"
  else
    nohup $SUDO "$bin" -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$logfile" >/dev/null 2>&1 &
  fi
  wait_port 4222
  log "NATS ready on 127.0.0.1:4222"
}

ensure_postgres
ensure_nats
