# The README names these targets. Each one installs what it needs first (scripts/setup.sh).
.PHONY: run cluster test test-latest check lint format typecheck pytest bench setup clean readme lock

PY := .venv/bin/python

run:            ## set up and start the server with the dashboard on http://127.0.0.1:8000
	scripts/setup.sh run
	.venv/bin/immune-core serve

cluster:        ## set up and start PostgreSQL, Redis, three nodes and HAProxy on this machine (Ctrl-C stops all)
	scripts/setup.sh test
	scripts/cluster.sh

test:           ## set up, then lint, type-check and run the whole test suite (what CI runs)
	scripts/setup.sh test
	$(MAKE) --no-print-directory check pytest

check: lint typecheck

lint:
	.venv/bin/ruff check server client_sdk tests scripts $(wildcard bench)
	.venv/bin/ruff format --check server client_sdk tests scripts $(wildcard bench)

format:
	.venv/bin/ruff format server client_sdk tests scripts $(wildcard bench)
	.venv/bin/ruff check --fix server client_sdk tests scripts $(wildcard bench)

typecheck:
	.venv/bin/mypy server client_sdk

# pytest exits 5 when it collects nothing; that fails here like any other non-zero status.
pytest:
	CI=$${CI:-false} $(PY) -m pytest -q

bench:          ## set up and run every benchmark scenario against our server, Node socket.io and the raw ceiling
	scripts/setup.sh bench
	$(PY) -m bench.run
	$(PY) -m bench.publish --database both
	$(PY) -m bench.cluster

setup:
	scripts/setup.sh test

test-latest:    ## the test suite against the newest releases of every dependency, ignoring the upper bounds (.venv-latest)
	scripts/setup.sh test
	scripts/test-latest.sh

lock:           ## regenerate requirements/*.lock (exact versions with hashes) from pyproject.toml
	for extras in "" "--extra dev" "--extra dev --extra bench"; do \
	  case "$$extras" in "") out=run;; "--extra dev") out=dev;; *) out=bench;; esac; \
	  .venv/bin/uv pip compile pyproject.toml $$extras --generate-hashes --python-version 3.11 -q -o requirements/$$out.lock; \
	done

clean:
	rm -rf .venv .venv-latest tests/js/node_modules bench/node/node_modules .pytest_cache .mypy_cache .ruff_cache

readme:         ## regenerate the README's configuration table from server/config.py
	$(PY) scripts/update_readme_config.py
