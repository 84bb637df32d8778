# kfchain: every target does its own set-up on a fresh machine (Python + pip is all it needs).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kfchain-installed
DEBS := hey chromium kcat

.PHONY: setup debs test lint typecheck unit demo up down status bench compile test_autoscaling test-autoscaling clean

setup: $(STAMP) debs

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing kfchain with its test and load tools (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[load,test]'
	@touch $(STAMP)

# Debian packages the tests use: hey (load), chromium (browser tests), kcat (a second Kafka client).
debs:
	@missing=""; for p in hey chromium kcat; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEBS) >/dev/null; \
	fi

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy events

unit: setup
	$(BIN)/pytest

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy events
	$(BIN)/pytest

demo: setup
	$(BIN)/python -m knative.local demo

up: setup
	$(BIN)/python -m knative.local up

down:
	$(BIN)/python -m knative.local down

status:
	$(BIN)/python -m knative.local status

bench: setup
	$(BIN)/python -m load.bench

compile: setup
	$(BIN)/python -m pipelines.compile

test_autoscaling: setup
	$(BIN)/python -m load.autoscale

test-autoscaling: test_autoscaling

clean:
	rm -rf .kfchain .pytest_cache .mypy_cache .ruff_cache
