# Switchyard: `make run` serves the whole stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVE_ARGS ?=

.PHONY: install clients run test lint bench scale-test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The client libraries tests/clients drives, each pinned, in venvs and node_modules of their own
# (LlamaIndex needs an older openai than the Agents SDK accepts). Rebuilt only when a pin changes;
# the JavaScript clients are skipped, with a note, on a machine without npm.
CLIENTS := tests/clients
CLIENTS_STAMP := var/clients-venv/.installed-stamp
LLAMAINDEX_STAMP := var/clients-venv-llamaindex/.installed-stamp
NODE_STAMP := $(CLIENTS)/node_modules/.installed-stamp

$(CLIENTS_STAMP): $(CLIENTS)/requirements.txt
	test -x var/clients-venv/bin/python || $(PYTHON) -m venv var/clients-venv
	var/clients-venv/bin/python -m pip install --quiet -r $<
	touch $@

$(LLAMAINDEX_STAMP): $(CLIENTS)/requirements-llamaindex.txt
	test -x var/clients-venv-llamaindex/bin/python || $(PYTHON) -m venv var/clients-venv-llamaindex
	var/clients-venv-llamaindex/bin/python -m pip install --quiet -r $<
	touch $@

$(NODE_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	if command -v npm >/dev/null 2>&1; then \
		cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the JavaScript client tests will be skipped"; fi

clients: $(CLIENTS_STAMP) $(LLAMAINDEX_STAMP) $(NODE_STAMP)

# The demo registry: simulator models, plus OpenAI/Anthropic/Gemini when their API key variable
# is set and a local Ollama when one answers. `make run SERVE_ARGS="--port 8001 --workers 4"`.
run: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py llmconfig demo
	DEBUG=$${DEBUG:-1} exec $(BIN)/python manage.py serve $(SERVE_ARGS)

# Two processes (pytest-xdist; tests/redis_plugin.py gives each its own Valkey, pytest-django its own
# database): most tests wait on the server processes they start, so two halve the wall time on two
# cores. A REDIS_URL set by the user names one server for every process: then the run stays serial.
# `make test TEST_WORKERS=0` runs on one process. worksteal: a worker that runs out of tests takes
# some from the other's queue, so a slow test late in one queue does not leave the other core idle
# (measured: load 8:05, loadfile 8:38, worksteal 7:29 for the whole suite).
TEST_WORKERS ?= $(if $(REDIS_URL),0,2)
test: install clients
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m tests.bench

# The scale-out run (tests/scale): Debian's nginx in front of two web processes and two RQ
# workers on PostgreSQL and Redis (the machine's, unless DATABASE_URL / REDIS_URL say otherwise).
# Needs nginx and wrk (apt-get install nginx-light wrk). Writes var/scale-report.json.
SCALE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SCALE_REDIS_URL ?= redis://127.0.0.1:6379/0
scale-test: install
	DATABASE_URL=$${DATABASE_URL:-$(SCALE_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(SCALE_REDIS_URL)} \
		$(BIN)/python -m pytest tests/scale -m scale

clean:
	rm -rf $(VENV) var
