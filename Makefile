# The two commands a newcomer needs:
#   make run   - the service on SQLite with local files, with a fresh demo team and its API key
#   make test  - lint and the test suite (SQLite by default; set DATABASE_URL / REDIS_URL for
#                PostgreSQL and Redis)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Local development only: `make run` is never a production server (see README, "Operating").
RUN_ENV := DEBUG=true

.PHONY: install run test lint format migrate superuser conformance bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		(echo "Python 3.11 or newer is needed (found $(PYTHON))" && exit 1)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/.installed

migrate: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput

run: migrate
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(RUN_ENV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

superuser: migrate
	$(RUN_ENV) $(BIN)/python manage.py createsuperuser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

# schemathesis against a live server with the app's own OpenAPI document (see README)
conformance: install
	bash scripts/conformance.sh

# Ratios of the write path's costs against their targets, on PostgreSQL, Redis, S3 (moto) and
# gunicorn, all started on 127.0.0.1 by the script (see scripts/bench.py)
bench: install
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
