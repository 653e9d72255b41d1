#!/usr/bin/env bash
# `make test`: brings up PostgreSQL and NATS, clears databases left by earlier test runs, and runs
# every test in the workspace against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-infra.sh
# Each test creates its own database; drop those of earlier runs (never the `careloop` database).
psql -h 127.0.0.1 -U postgres -d postgres -tAc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'careloop\_test\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done
cargo test --workspace --no-fail-fast "$@"

# The Helm chart, rendered, linted and validated offline (no cluster, no helm binary).
python3 -m pip install --quiet --disable-pip-version-check -r helm/tests/requirements.txt
python3 -m unittest discover -s helm/tests -v
