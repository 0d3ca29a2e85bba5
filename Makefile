# The two commands a newcomer needs:
#   make run   - the service on SQLite with local files, with a demo team and its API key
#   make test  - lint and the whole test suite (SQLite by default; set DATABASE_URL / REDIS_URL
#                for PostgreSQL and Redis); `make test-fast` leaves out the tests that start
#                processes (gunicorn, moto, Chromium, manage.py), as CI's SQLite pass does

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Local development only: `make run` is never a production server (see docs/operating.md).
RUN_ENV := DEBUG=true
# The demo team's summary, key included, kept between runs of `make run` (`make fresh` forgets it).
DEMO := var/demo.json

.PHONY: install install-run run fresh test test-fast lint format migrate superuser conformance bench profile image docs docs-build clean

# What running needs; `make run` installs only this.
$(BIN)/.installed-run: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || \
		(echo "Python 3.11, 3.12 or 3.13 is needed (found $(PYTHON))" && exit 1)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools prints a warning about editable installs that reads like an error; it is not one.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e .
	@touch $@

# Plus the test tools (pytest, ruff, moto, schemathesis, ...).
$(BIN)/.installed: $(BIN)/.installed-run
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Plus the docs site's tools (mkdocs, its Material theme, Swagger UI for the OpenAPI page).
$(BIN)/.installed-docs: $(BIN)/.installed-run
	$(BIN)/pip install --quiet -e '.[docs]'
	@touch $@

install-run: $(BIN)/.installed-run
install: $(BIN)/.installed

# Local settings for manage.py (DEBUG=true), so the docs' operator commands run as written.
.env:
	@printf '# Local development only (make run). manage.py reads this; servers never do.\nDEBUG=true\n' > $@

# Quiet: a first run applies some 60 migrations, which would push the demo's summary off screen.
migrate: install-run .env
	@echo "Applying database migrations (quietly)..."
	@$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0

# The server, and beside it the task worker that delivers webhooks (in the background, stopped
# when the server stops: Ctrl-C, an error, any exit). The demo team's summary is printed once
# the server answers, so its last line, the export line, is the last thing on the screen.
# DEMO_SUMMARY_FILE prefills Swagger UI's Try it out with the demo team's ids.
run: migrate
	@umask 077 && $(RUN_ENV) $(BIN)/python manage.py seed_demo --reuse $(DEMO) --try-it-out \
		--base-url http://$(HOST):$(PORT) > var/demo.txt
	@$(RUN_ENV) $(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	$(BIN)/python scripts/print_when_ready.py http://$(HOST):$(PORT)/healthz var/demo.txt & \
	printer=$$!; \
	trap 'kill $$worker $$printer 2>/dev/null; wait $$worker 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	echo "Webhook worker started (pid $$worker); it stops with the server."; \
	$(RUN_ENV) DEMO_SUMMARY_FILE=$(CURDIR)/$(DEMO) $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Start over: a new database, no stored files, a new demo team on the next `make run`.
fresh:
	rm -rf var/db.sqlite3 var/db.sqlite3-wal var/db.sqlite3-shm var/media $(DEMO) var/demo.txt

superuser: migrate
	$(RUN_ENV) $(BIN)/python manage.py createsuperuser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the floors (.importlinter): no app imports one above it

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# pytest-xdist workers (one per core here; WORKERS=0 runs the tests in this process, one by one).
WORKERS ?= 2

test: lint
	$(BIN)/pytest -n $(WORKERS)

# Without the `live` tests (tests/process_tests.py marks them): what CI runs on SQLite.
test-fast: lint
	$(BIN)/pytest -n $(WORKERS) -m "not live"

# schemathesis against a live server with the app's own OpenAPI document (see docs/getting-started.md)
conformance: install
	bash scripts/conformance.sh

# Ratios of the write path's costs against their targets, on PostgreSQL, Redis, S3 (moto) and
# gunicorn, all started on 127.0.0.1 by the script (see scripts/bench/)
bench: install
	$(BIN)/python -m scripts.bench

# One row (ROW=12) with its servers under py-spy: where their CPU goes, printed when each server
# stops; the samples stay in var/profile/ (collapsed stacks, for a flame graph).
ROW ?=
profile: install
	@test -n "$(ROW)" || (echo "Name a row: make profile ROW=12" && exit 1)
	BENCH_PROFILE=var/profile $(BIN)/python -m scripts.bench $(ROW)

# The container image (Containerfile; see docs/operating.md): with podman if it is installed,
# else docker. IMAGE names it; IMAGE_BUILD_FLAGS adds options (--build-arg BASE=..., --secret ...).
CONTAINER_ENGINE ?= $(shell command -v podman || command -v docker)
IMAGE ?= localhost/lukittu-releases:latest
IMAGE_BUILD_FLAGS ?=
image:
	$(CONTAINER_ENGINE) build $(if $(findstring podman,$(CONTAINER_ENGINE)),--format docker) \
		$(IMAGE_BUILD_FLAGS) -t $(IMAGE) -f Containerfile .

# The docs site (docs/, mkdocs.yml) on http://$(HOST):$(DOCS_PORT), rebuilt on every change.
DOCS_PORT ?= 8001
docs: $(BIN)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

# What CI checks: the site builds, with no broken link or anchor (into site/).
docs-build: $(BIN)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .env site
