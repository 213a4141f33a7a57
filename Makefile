# Safeguard — the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in emails, pages and invitations point here: the demo's own address unless set.
SITE_URL ?= http://$(HOST):$(PORT)
# The test suite runs against the real services (PostgreSQL, Redis, a Celery worker, Chromium).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/safeguard
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test test-fast lint format bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Embedded default: SQLite under var/, Celery tasks in-process, demo users and synthetic data.
demo: install
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true SITE_URL=$(SITE_URL) $(BIN)/python manage.py seed_demo
	DEBUG=true SITE_URL=$(SITE_URL) $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  DEBUG=false SECRET_KEY=test-only-secret-key-not-for-production DATABASE_CONN_MAX_AGE=0 \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-quick: install
	$(BIN)/python benchmarks/bench_hashing.py --quick
	$(BIN)/python benchmarks/bench_matching.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache
