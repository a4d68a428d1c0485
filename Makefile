# Every target works from a fresh clone: the venv is made on first use from
# the pinned requirement files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# kube-proxy mode of `make lab`: iptables (the default, as kube-proxy's) or nftables.
PROXY_MODE ?= iptables
NODES ?= 1

.DEFAULT_GOAL := help

.PHONY: help venv run test lint format lock lint-k8s images standins lab lab-down bench bench-quick bench-scale bench-rules diagrams lesson-capture e2e-kind up down scale clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

RUN_STAMP := $(VENV)/.installed-run
# Every requirement file is exported from uv.lock with hashes (scripts/lock.sh).
PIP_INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes

# The dev set: the tiers plus every test, lint and tool dependency. It holds the run set
# at the same versions (one lock), so it satisfies `make run` too.
$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements/dev.txt
	@touch $@ $(RUN_STAMP)

# The run set: only what the two tiers need, so a first `make run` skips the test tools.
$(RUN_STAMP): requirements/run.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements/run.txt
	@touch $@

venv: $(STAMP) ## Create .venv from the pinned requirements (the dev set)

run: $(RUN_STAMP) ## Run the app locally on SQLite, no Redis (Ctrl-C stops it)
	$(PY) scripts/run_local.py

test: $(STAMP) ## Run every test (real MariaDB/Redis/Chromium where installed)
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, format check, and mypy --strict on backend/, frontend/, common/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

diagrams: $(STAMP) ## Regenerate docs/img/*.svg from docs/diagrams/*.py (rule chains: from docs/captures)
	$(PY) -m docs.diagrams.packet_path
	$(PY) -m docs.diagrams.rule_chains

lesson-capture: $(STAMP) ## Re-capture the lesson's lab outputs and screenshots, both proxy modes and three nodes (root, ~4 min)
	scripts/lesson-capture.sh

lock: $(STAMP) ## Re-resolve uv.lock from pyproject.toml, export requirements/*.txt with hashes (UPGRADE=name bumps one)
	scripts/lock.sh $(if $(UPGRADE),--upgrade $(UPGRADE))

lint-k8s: $(STAMP) ## Manifests, the Dockerfile and compose, checked without a cluster
	$(PY) -m pytest tests/k8s tests/compose -q

bench-scale: $(STAMP) ## Latency at 10^3, 10^5 and 10^6 messages on MariaDB; report under var/
	$(PY) -m bench.scale --output var/bench/scale.md

bench-rules: $(STAMP) ## kube-proxy rules at 10, 1,000, 5,000 Services, iptables vs nftables mode; its section of docs/benchmarks.md (root)
	$(PY) -m bench.rule_scaling

e2e-kind: $(STAMP) ## Build images, load into kind, apply k8s/, run tests/e2e (needs docker + kind)
	scripts/e2e-kind.sh

images: ## Build both images from the one Dockerfile (Docker or podman), tagged as k8s/base/kustomization.yaml pins; PYTHON_IMAGE=… to change the base
	scripts/build-images.sh

standins: ## Build stand-in python/mysql/redis images from Debian packages (only where Docker Hub is unreachable; root)
	scripts/standin-images.sh

# Compose v2 (`docker compose`) where it exists, else Debian 12's docker-compose 1.29.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# One project name wherever the checkout lives (docker-compose 1.29 refuses a top-level
# `name:` in the file): containers, networks and the volume are clusterip-demo_….
export COMPOSE_PROJECT_NAME ?= clusterip-demo
BACKENDS ?= 3

up: ## Compose: build and start every tier in the background (http://127.0.0.1:8080)
	$(COMPOSE) up --build --detach
	@echo "up: http://127.0.0.1:8080   (logs: $(COMPOSE) logs -f; stop: make down)"

scale: ## Compose: run BACKENDS backend replicas (default 3) without re-running the one-shot migrate
	$(COMPOSE) up --detach --no-deps --scale backend=$(BACKENDS) backend

down: ## Compose: stop and remove the containers and networks; the MySQL volume (the messages) stays
	$(COMPOSE) down --remove-orphans

.PHONY: down-volumes
down-volumes: ## Compose: stop and remove everything, the MySQL volume and every message in it too
	$(COMPOSE) down --volumes --remove-orphans

lab: $(STAMP) ## The app in network namespaces behind kube-proxy's rules, PROXY_MODE=iptables|nftables, NODES=1..5 (root; Ctrl-C stops)
	$(PY) -m lab up --proxy-mode $(PROXY_MODE) --nodes $(NODES)

lab-down: ## Stop a running lab and remove everything a lab added (root)
	$(PY) -m lab down

bench: $(STAMP) ## Benchmark every tier against a bare endpoint; writes docs/benchmarks.md
	$(PY) -m bench

bench-quick: $(STAMP) ## A fast look: one short round, report under var/
	$(PY) -m bench --quick --output var/bench/benchmarks.md

clean: ## Remove the venv and local data
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
