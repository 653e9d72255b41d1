# CareLoop: the two commands that matter are `make run` and `make test`.
.PHONY: run stop test lint fmt fmt-check clippy build bench

run:  ## start PostgreSQL, NATS, every service, load demo data, print how to call it
	scripts/run.sh

stop: ## stop the services started by `make run`
	scripts/stop.sh

test: ## start PostgreSQL and NATS if needed and run every test against them
	scripts/test.sh

lint: fmt-check clippy

fmt:
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

build:
	cargo build --workspace --bins

bench: ## the whole system through the gateway, the event backbone and W4; figures printed and written to bench/results/ (release build; nothing asserted)
	scripts/ensure-infra.sh
	psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -q -f scripts/bootstrap-db.sql >/dev/null
	cargo build --release --quiet --bins
	cargo run --release --quiet -p careloop-bench
