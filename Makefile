# The README's commands. A fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: up test test-unit test-service test-e2e test-browser install system-deps lint fmt docs clean resilience

## make up: install, start the embedded Kafka and MongoDB, then the five services.
up: install
	$(BIN)/sotong up

## make test: lint (format, style, import contracts), type-check, then every tier.
test: system-deps lint test-unit test-service test-e2e test-browser

## make system-deps: the Debian packages the tests use (promtool), installed once.
system-deps:
	bash .ci/system-deps

## make test-unit: pure logic and in-memory fakes; no sockets, no processes (seconds).
## One process: two workers would spend longer importing than they save.
test-unit: install
	$(BIN)/pytest -m "not service and not e2e and not browser"

## make test-service: one service at a time on the real embedded Kafka and MongoDB.
test-service: install
	$(BIN)/pytest -m service -n 2

## make test-e2e: the services as separate processes, as `make up` runs them.
## Two workers, each taking whole modules (one stack of processes per module).
test-e2e: install
	$(BIN)/pytest -m e2e -n 2 --dist loadfile

## make test-browser: the portal's pages in headless Chromium (Debian's chromium, and a
## Korean font for the screenshots, installed once) on the services as processes.
test-browser: install
	bash .ci/system-deps "chromium chromium"
	fc-list :lang=ko | grep -q . || bash .ci/system-deps "korean-font-missing fonts-nanum"
	$(BIN)/pytest -m browser

## make resilience: the resilience suite at the issue's size (poison, isolation, personal
## data, fuzzing, 5,000 complaints under kill -9, outages of 30/90/180 s); about an hour.
## Not part of `make test` (its short version is tests/e2e/test_resilience_short.py).
## Writes var/resilience/report.json and summary.txt; exits 1 when a bar is missed.
resilience: install
	$(BIN)/sotong resilience

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m sotong.asyncapi --check docs

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make docs: regenerate docs/lifecycle.md from the state machine and docs/asyncapi.yaml
## (and .json) from the services' brokers and schemas/; `make lint` fails if they differ.
docs: install
	$(BIN)/python -m routing.docs > docs/lifecycle.md
	$(BIN)/python -m sotong.asyncapi docs

clean:
	rm -rf $(TOOLS) $(VENV) var .pytest_cache .mypy_cache .ruff_cache
