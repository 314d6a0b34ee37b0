# Two commands for a fresh machine: `make run` and `make test`. Both build .venv from
# requirements.lock (the whole pinned tree, with hashes) when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW ?= ignore

.PHONY: install run run-sim run-local test sim bench bench-stream bench-trades bench-bytes bench-parquet bench-scale bench-api bench-hotpath soak lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

run: $(STAMP)  ## the Prefect stack (server, worker, deployments, automations, poller) until Ctrl-C
	$(BIN)/collector up

run-sim: $(STAMP)  ## the same against the local venue simulator
	$(BIN)/collector up --sim

run-local: $(STAMP)  ## discovery loop + poller in one process, no Prefect
	$(BIN)/collector run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

sim: $(STAMP)
	$(BIN)/collector sim --port 8765

bench: $(STAMP)  ## poller throughput, CPU per book, book age, RSS; Polymarket batched vs per-instrument, Kalshi batches; then the feeds; trades; then bytes on disk
	$(BIN)/python bench/poller_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/trades_bench.py
	$(BIN)/python bench/bytes_bench.py
	$(BIN)/python bench/parquet_bench.py

bench-hotpath: $(STAMP)  ## the REST hot path replayed on one thread: CPU per book without HTTP or thread noise (A/B of code changes)
	$(BIN)/python bench/hotpath_bench.py

bench-bytes: $(STAMP)  ## bytes per instrument-hour: JSONL, JSONL.zst, daily Parquet; every_poll vs changes; two change regimes (~5 min)
	$(BIN)/python bench/bytes_bench.py

bench-parquet: $(STAMP)  ## the daily Parquet layout: size and DuckDB / collector.read query times per writer option (~15 min)
	$(BIN)/python bench/parquet_bench.py

bench-trades: $(STAMP)  ## trade capture: trades/s, CPU per trade (feed, REST tape, duplicates), bytes per trade
	$(BIN)/python bench/trades_bench.py

bench-stream: $(STAMP)  ## stream capture alone: messages/s, CPU per change, receive-to-disk latency, RSS
	$(BIN)/python bench/stream_bench.py

bench-scale: $(STAMP)  ## 10,000 Polymarket instruments on 2 poller shards under the local Prefect stack, then kill -9 of one
	$(BIN)/python bench/scale_bench.py

bench-api: $(STAMP)  ## Prefect API read latency (p50/p99) on SQLite vs PostgreSQL under the poller's heartbeats and discovery (~8 min)
	$(BIN)/python bench/api_latency_bench.py

soak: $(STAMP)  ## 30 min at ~2,000 instruments with 2% injected errors (SOAK_SECONDS to change)
	$(BIN)/python bench/soak.py
	$(BIN)/python -m pytest -m soak tests/reliability

# Re-pin the whole tree after editing pyproject.toml dependencies (needs `uv` on PATH).
lock:
	uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
