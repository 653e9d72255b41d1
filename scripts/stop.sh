#!/usr/bin/env bash
# Stops the services `make run` started (SIGTERM: they drain in-flight calls first).
cd "$(dirname "$0")/.."
for pidfile in .run/*.pid; do
  [ -e "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$pidfile"
done
