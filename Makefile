# compose-ha: the verbs people type. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROJECT ?= compose-ha
VENV ?= .venv
HACTL := $(VENV)/bin/hactl
PYTEST := $(VENV)/bin/pytest
# Later env files win: local image names, the user's settings, then what hactl rolled out.
# The order is defined once, in compose/env-files (hactl reads the same list).
ENV_FILE_ORDER := $(shell grep -v '^\#' compose/env-files)
ENV_FILES = $(foreach f,$(ENV_FILE_ORDER),$(if $(wildcard $(f)),--env-file $(f)))
COMPOSE = docker compose -p $(PROJECT) $(ENV_FILES)
BASE_FILES := -f docker-compose.yml
# Monitoring and self-healing start with the HA stack unless MONITORING=0 / SELFHEAL=0.
MONITORING ?= 1
SELFHEAL ?= 1
HA_FILES = -f docker-compose.yml -f docker-compose.ha.yml $(if $(filter 1,$(MONITORING)),$(if $(wildcard compose/monitoring.yml),-f compose/monitoring.yml)) $(if $(filter 1,$(SELFHEAL)),$(if $(wildcard compose/selfheal.yml),-f compose/selfheal.yml))
PYTEST_ARGS ?=

.PHONY: help bootstrap venv secrets airgap-images build up up-ha down clean ps logs \
        status scale rollout verify audit chaos bench bench-docs lint test test-unit \
        k8s-binaries k8s-check test-slow k8s-up k8s-down k8s-status k8s-e2e

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: venv secrets ## Docker engine, Compose plugin, images (pulled or built locally), tools
	@bash scripts/bootstrap.sh

venv: $(VENV)/.installed ## the Python tools (hactl, pytest, ruff) in .venv
$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

secrets: ## generate missing secret files in ./secrets (never overwrites)
	@bash scripts/gen_secrets.sh

airgap-images: ## build local equivalents of every upstream image (no registry needed)
	@bash scripts/airgap/build_images.sh

build: bootstrap ## build the backend image as compose-ha/web:latest (BUILD_IMAGE=... for another tag)
	@# The process environment outranks .env.rollout, so a rolled-out tag is never overwritten.
	@WEB_IMAGE=$${BUILD_IMAGE:-compose-ha/web:latest} $(COMPOSE) $(BASE_FILES) build web

up: bootstrap ## single replica + PostgreSQL; web on 127.0.0.1:8000 (WEB_PORT)
	@$(COMPOSE) $(BASE_FILES) up -d --wait --remove-orphans
	@echo "web:  http://127.0.0.1:$${WEB_PORT:-8000}/api/v1/whoami"

up-ha: bootstrap ## Traefik + 3 replicas (WEB_REPLICAS) + monitoring + self-healing (MONITORING=0, SELFHEAL=0: without)
	@# The controller's image is built from this checkout (cached layers: seconds when unchanged).
	@if [ "$(SELFHEAL)" = 1 ] && [ -f compose/selfheal.yml ]; then $(COMPOSE) $(HA_FILES) build -q selfheal; fi
	@$(COMPOSE) $(HA_FILES) up -d --wait --remove-orphans
	@echo "chat page:  http://127.0.0.1:$${HTTP_PORT:-80}/  (sign in with a token from secrets/api_tokens)"
	@echo "service:    http://127.0.0.1:$${HTTP_PORT:-80}/api/v1/whoami  (https on $${HTTPS_PORT:-443})"
	@echo "dashboard:  http://127.0.0.1:$${TRAEFIK_API_PORT:-8080}/dashboard/  (admin / secrets/dashboard_password)"
	@if [ "$(MONITORING)" = 1 ] && [ -f compose/monitoring.yml ]; then \
	  echo "prometheus: http://127.0.0.1:$${PROMETHEUS_PORT:-9090}   alertmanager: http://127.0.0.1:$${ALERTMANAGER_PORT:-9093}"; fi

down: ## stop and remove the stack's containers (data volumes are kept)
	@$(COMPOSE) $(HA_FILES) down --remove-orphans

clean: ## down, and remove the data volumes too
	@$(COMPOSE) $(HA_FILES) down --remove-orphans -v

ps: ## containers of the stack
	@$(COMPOSE) $(HA_FILES) ps

logs: ## follow the stack's logs
	@$(COMPOSE) $(HA_FILES) logs -f --tail=50

status: venv ## one row per replica: health, Traefik state, version, uptime
	@$(HACTL) --project $(PROJECT) status

scale: venv ## scale web: make scale N=5 (drains replicas it removes)
	@test -n "$(N)" || { echo "usage: make scale N=<replicas>"; exit 2; }
	@$(HACTL) --project $(PROJECT) scale $(N)

rollout: venv ## zero-downtime rolling update: make rollout [ARGS="--image TAG | --build"]
	@$(HACTL) --project $(PROJECT) rollout $(ARGS)

verify: venv ## pass/fail checks of the running stack
	@$(HACTL) --project $(PROJECT) verify

audit: ## security checks of the running HA stack, one pass/fail line each (PROJECT)
	@PROJECT=$(PROJECT) python3 scripts/audit.py

chaos: venv ## every chaos scenario under load, beside a hand-tuned plain Traefik (CHAOS_ARGS=...)
	@$(HACTL) --project $(PROJECT) chaos --scenario all --peer $(CHAOS_ARGS)

bench: venv ## benchmarks on the running HA stack, results in results/bench/
	@$(HACTL) --project $(PROJECT) bench

bench-docs: venv ## docs/benchmarks.md from docs/bench/latest.json (RESULT=results/bench/<ts>.json: adopt that run first)
	@$(VENV)/bin/python scripts/bench_page.py $(if $(RESULT),--result $(RESULT))

lint: venv ## ruff and hadolint
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/hadolint backend/Dockerfile compose/*/Dockerfile compose/airgap/*/Dockerfile scripts/k8s/node-image/Dockerfile

test-unit: venv ## fast tests, no Docker
	@$(PYTEST) tests/unit $(PYTEST_ARGS)

# In this order: on a fresh machine the Go build of the Kubernetes binaries (started in the
# background by .ci/run) runs beside the bootstrap, the unit and the integration tests (light
# stacks); the k8s tests wait for it, and only then the timing-sensitive e2e tests start, instead
# of competing with the build for the same cores (docs/kubernetes.md).
TEST_PATHS := tests/unit tests/integration tests/k8s tests/e2e
test: bootstrap build lint ## everything but the slow tier: unit, k8s, integration, end-to-end
	@$(PYTEST) $(TEST_PATHS) -m "not slow" $(PYTEST_ARGS)

test-slow: venv k8s-binaries ## the slow tier: waits of minutes (the HPA's 300 s scale-down window)
	@$(PYTEST) tests -m slow $(PYTEST_ARGS)

k8s-binaries: ## build etcd, kube-apiserver & co. from Go modules once (cache: ~/.cache/compose-ha/k8s)
	@bash scripts/k8s/build-binaries.sh

k8s-check: venv k8s-binaries ## k8s/ manifests: offline checks, then a real local control plane (kwok nodes)
	@$(PYTEST) tests/unit/test_k8s_manifests.py tests/unit/test_k8s_hpa_replay.py tests/k8s \
	  -m "not slow" $(PYTEST_ARGS)

# A real cluster: three node containers (kind's design) running the backend's pods, scripts/k8s/cluster.py.
k8s-up: venv ## real 3-node cluster in k8sn-* containers: PostgreSQL, backend, Traefik on 127.0.0.1:18080
	@$(VENV)/bin/python scripts/k8s/cluster.py up

k8s-down: venv ## remove the k8sn-* cluster and restore the host sysctls kubelet changed
	@$(VENV)/bin/python scripts/k8s/cluster.py down

k8s-status: venv ## the k8sn-* containers, nodes and pods
	@$(VENV)/bin/python scripts/k8s/cluster.py status

k8s-e2e: venv ## HA tests under load on the real cluster (make k8s-up first)
	@$(PYTEST) tests/k8s_e2e $(PYTEST_ARGS)
