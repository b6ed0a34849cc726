# TokenForge: `make run` starts the embedded default, `make test` runs every test,
# `make test-fast` every test not marked slow, `make bench` the benchmarks of
# docs/benchmarks.md. Each creates the virtualenv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: run test test-fast lint bench contracts programs vendor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Node is needed to recompile contracts, to check the committed artifacts and to run the
# Hardhat node that tests and benchmarks launch against.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Listens on TOKENFORGE_HOST:TOKENFORGE_PORT (default 127.0.0.1:8000). On the embedded
# default the first start prints a local operator API key once (export TOKENFORGE_API_KEY=…).
run: $(STAMP)
	$(BIN)/tokenforge serve

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

# ruff (lint and format) and mypy (strict on domain/, jobs/, store/ and the ports), as CI runs them.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

contracts: $(NODE_STAMP)
	npm run --silent compile

# Solana programs: programs/<name>/<name>.c compiled by Debian's clang-14 -target bpf and
# linked by scripts/sbpf_link.py into src/tokenforge/chains/solana/programs/<name>.so
# (committed; a test checks a rebuild reproduces them).
programs: $(STAMP)
	$(BIN)/python scripts/build_programs.py

# The launch page's browser crypto (secp256k1, ed25519, keccak-256) copied from the pinned
# npm @noble/curves into api/static/vendor/ (committed; a test checks it matches).
vendor: $(NODE_STAMP)
	node scripts/vendor_web.js

# 1,000 launches each: Solana and EVM on the embedded default (8 clients), EVM on a Hardhat
# node with 4 deployer keys and Solana on `tokenforge devnet` (32 clients); then the market
# (trades, index lag, backlog replay, gas) on the embedded chain and on Hardhat. Minutes, not seconds.
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/pipeline.py --chain solana --tokens 1000 --concurrency 8
	$(BIN)/python bench/pipeline.py --chain ethereum --tokens 1000 --concurrency 8
	$(BIN)/python bench/pipeline.py --chain ethereum --network hardhat --deployer-keys 4 --tokens 1000 --concurrency 32
	$(BIN)/python bench/pipeline.py --chain solana --network devnet --tokens 1000 --concurrency 32
	$(BIN)/python bench/market.py --chain ethereum --network embedded
	$(BIN)/python bench/market.py --chain ethereum --network hardhat

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
