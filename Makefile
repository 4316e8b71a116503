# Switchyard: `make run` serves the whole stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVE_ARGS ?=

.PHONY: install run test lint bench scale-test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo registry: simulator models, plus OpenAI/Anthropic/Gemini when their API key variable
# is set and a local Ollama when one answers. `make run SERVE_ARGS="--port 8001 --workers 4"`.
run: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py llmconfig demo
	DEBUG=$${DEBUG:-1} exec $(BIN)/python manage.py serve $(SERVE_ARGS)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: install
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) var
