# crypto-mine: every task a person does has a target here. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
UV_VERSION := 0.13.9
UV := python3 -m uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install what is missing: redis-server, uv, the Python environment
	@scripts/ensure-apt.sh redis-server
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --all-packages --locked --quiet

.PHONY: run
run: setup ## start the whole stack locally (Redis, MongoDB server, api, worker, id-allocator)
	@$(BIN)/python -m devstack

.PHONY: token
token: ## print a development token for USER (default: alice) signed with the local secret
	@$(BIN)/python -m devstack token $(if $(filter command line,$(origin USER)),$(USER),alice)

.PHONY: tools
tools: setup ## install the test tools: prometheus, redis_exporter, chromium, wrk, helm, checkov, podman, the Kubernetes binaries (cached)
	@scripts/ensure-apt.sh prometheus prometheus-redis-exporter etcd-server openssl chromium \
	  chromium-driver wrk hey podman buildah runc debootstrap containerd \
	  containernetworking-plugins iptables conntrack dnsmasq-base \
	  golang-github-containernetworking-plugin-dnsname
	@scripts/ensure-helm.sh >/dev/null
	@scripts/ensure-checkov.sh >/dev/null
	@scripts/cluster.sh build

.PHONY: images
images: ## build the images with podman: api, worker, id-allocator, operator (+ dev Redis, MongoDB, pause)
	@scripts/images.sh build >/dev/null
	@scripts/images.sh list

.PHONY: test
test: tools images ## run the whole test suite against real servers (KUBECONFIG, else a local one-node cluster)
	@$(BIN)/pytest $(PYTEST_ARGS)

# The edit-test loop: the tests that take well under a second each (measured with
# `pytest --durations=0`): unit tests, and the api, worker and operator in-process against the
# shared Redis and MongoDB servers. Left to `make test` (CHECK_SKIPS): tests that start
# processes or servers of their own, stop them, wait for timeouts, or render the chart.
CHECK_TESTS := tests/test_docs.py tests/test_layout.py tests/test_redis_protocol.py \
  tests/mutation/test_lists.py tests/operator tests/common tests/pipeline \
  tests/worker tests/api tests/allocator/test_allocator_settings.py \
  tests/monitoring/test_dashboards.py
CHECK_SKIPS := tests/operator/test_operator_main.py tests/common/test_mongo_metrics.py \
  tests/pipeline/test_queue_reporter.py \
  tests/common/test_settings.py::test_services_stop_at_start_up_naming_the_variables \
  tests/worker/test_fault_injection.py tests/worker/test_supervisor.py \
  tests/worker/test_queue_cli.py tests/worker/test_bench_worker.py tests/worker/test_jobs.py \
  tests/api/test_accounts.py tests/api/test_events.py tests/api/test_live_socket.py \
  tests/api/test_http_limits.py tests/api/test_inline.py tests/api/test_applied.py \
  tests/api/test_redis_safety.py tests/api/test_metrics_folder.py

.PHONY: check
check: lint ## lint and the fast tests (CHECK_TESTS less CHECK_SKIPS, under 2 min): the edit-test loop
	@$(BIN)/pytest -q -p no:cacheprovider $(CHECK_TESTS) $(addprefix --deselect=,$(CHECK_SKIPS)) \
	  $(PYTEST_ARGS)

.PHONY: chart-test
chart-test: tools images ## chart, images, the one-node cluster, alerts, dashboards: lint, validate, checkov, install, promtool, live queries
	@$(BIN)/pytest tests/chart tests/images tests/cluster tests/monitoring $(PYTEST_ARGS)

.PHONY: generate
generate: setup ## regenerate dashboards, the chart's copies of rules and dashboards, k8s/, operator/rbac.yaml
	@$(BIN)/python -m devstack.generate

.PHONY: k8s
k8s: generate ## render the plain manifests in k8s/ from the chart

.PHONY: lint
lint: setup ## ruff (lint + format check) and strict mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy services operator devstack tests grafana bench
	@$(BIN)/python -m devstack.generate --check

.PHONY: fmt
fmt: setup ## format and autofix
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

IMAGE_LOCK_ARGS := --generate-hashes --universal --python-version 3.11 --no-header --quiet

.PHONY: lock
lock: ## refresh uv.lock and the images' requirements.lock files
	@$(UV) lock --quiet
	@for pair in api:services/api worker:services/worker id-allocator:services/id-allocator \
	    operator:operator; do \
	  name=$${pair%%:*}; dir=$${pair#*:}; \
	  $(UV) export --package crypto-mine-$$name --no-dev --frozen --no-emit-workspace \
	    --no-header --quiet -o $$dir/requirements.lock; \
	done
	@mkdir -p .local
	@echo hatchling | $(UV) pip compile - $(IMAGE_LOCK_ARGS) -o build-requirements.lock
	@$(UV) export --all-packages --frozen --no-hashes --no-header --quiet --no-emit-workspace \
	  -o .local/constraints.txt
	@printf 'nx-27017\nneosqlite\npymongo\n' | $(UV) pip compile - $(IMAGE_LOCK_ARGS) \
	  -c .local/constraints.txt -o devstack/images/mongodb-requirements.lock

.PHONY: bench
bench: setup ## benchmark against baselines on its own servers (~4 min): table, .local/bench/bench.{json,png}
	@scripts/ensure-apt.sh wrk hey redis-server
	@$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: load
load: setup ## k6 load test (BASE_URL, RPS, USERS, DURATION, P95_MS; AUTH_TOKEN(S_FILE), else tokens minted for make run's stack): answers, latency, Redis memory
	@$(BIN)/python -m tests.load

.PHONY: chaos
chaos: setup ## whole-stack fault run: processes SIGKILLed, Redis and MongoDB restarted under load (DURATION s)
	@$(BIN)/python -m tests.chaos --duration $(or $(DURATION),150)

.PHONY: overload
overload: setup ## three times the sustainable click rate: only 202/200/429/503, bounded queue and memory
	@$(BIN)/python -m tests.chaos.overload

.PHONY: autoscaling
autoscaling: setup ## autoscaling experiment (~15 min): square wave and ramp through the operator, vs the HPA and KEDA replayed
	@scripts/ensure-apt.sh prometheus etcd-server openssl
	@scripts/cluster.sh build
	@$(BIN)/python -m tests.autoscaling $(AUTOSCALING_ARGS)

.PHONY: fuzz
fuzz: setup ## schemathesis against every operation of /openapi.json on a running stack
	@$(BIN)/python -m tests.fuzz

# mutmut runs in an environment of its own (the locked one plus mutmut): its setproctitle would
# make RQ rename the worker processes the tests find by their command line.
MUTMUT_VERSION := 3.8.1
MUTATION_VENV := .local/mutation/venv

.PHONY: mutation
mutation: setup ## mutation testing of the core: mutmut + listed Lua mutants, score per module (MUTATION_ARGS)
	@UV_PROJECT_ENVIRONMENT=$(MUTATION_VENV) $(UV) sync --all-packages --locked --inexact --quiet
	@$(UV) pip install --quiet --python $(MUTATION_VENV)/bin/python "mutmut==$(MUTMUT_VERSION)"
	@$(MUTATION_VENV)/bin/python -m tests.mutation $(MUTATION_ARGS)

.PHONY: dashboard-image
dashboard-image: setup ## draw the mining dashboard from a live run into docs/monitoring/ (~5 min)
	@scripts/ensure-apt.sh prometheus redis-server
	@$(BIN)/python -m grafana.screenshot

.PHONY: queue
queue: setup ## show the click queue: depth, jobs in progress, dead letters, workers, lag
	@$(BIN)/crypto-mine-queue

.PHONY: cluster
cluster: setup images ## start a one-node Kubernetes cluster running the images (built once, ~10 min)
	@scripts/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the local cluster and remove its traces (bridge, iptables chains, mounts)
	@scripts/cluster.sh down

.PHONY: clean
clean: ## remove local state (.local) and caches of the tools
	rm -rf .local .mypy_cache .ruff_cache .pytest_cache
