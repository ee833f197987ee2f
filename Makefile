PYTHON ?= python3
KIND_CLUSTER ?= vectorizer-e2e
KIND_NODE_IMAGE ?= kindest/node:v1.36.3
KIND_KUBECONFIG ?= $(CURDIR)/.kind-kubeconfig
IMAGE ?= vectorizer:0.1.0

.PHONY: help install run test unit integration e2e e2e-kind e2e-binaries dev-cluster dev-cluster-down lint typecheck bench bench-replication bench-observability bench-ab bench-filters bench-snapshots bench-sparse bench-named bench-quick clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: ## install the package with its test tools (editable)
	$(PYTHON) -m pip install -e '.[test]'

run: ## install and run the data plane on its defaults (127.0.0.1:15002, ./data)
	$(PYTHON) -m pip install -e . && vectorizer serve

test: ## install and run every test (the same command as .ci/run)
	$(PYTHON) -m pip install -e '.[test]' && $(PYTHON) -m pytest

unit: ## unit tests only
	$(PYTHON) -m pytest tests/unit -q

integration: ## integration tests (real server processes on 127.0.0.1)
	$(PYTHON) -m pytest tests/integration -q

e2e-binaries: ## build kube-apiserver, controller-manager, scheduler, kubectl, etcd, helm (cached)
	e2e/build-binaries.sh

e2e: ## the end-to-end suite on a real control plane with a process kubelet (needs root)
	$(PYTHON) -m pytest e2e -q

e2e-kind: ## the e2e suite on a kind cluster (needs Docker): build and load the image, helm install the operator, pytest e2e
	kind create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) --wait 120s
	kind get kubeconfig --name $(KIND_CLUSTER) >$(KIND_KUBECONFIG)
	docker build -t $(IMAGE) .
	docker pull python:3.11-slim
	kind load docker-image $(IMAGE) python:3.11-slim --name $(KIND_CLUSTER)
	helm upgrade --install vectorizer-operator charts/vectorizer-operator \
	  --kubeconfig $(KIND_KUBECONFIG) -n vectorizer-system --create-namespace \
	  --set image.tag=$(lastword $(subst :, ,$(IMAGE))) --wait --timeout 3m
	VECTORIZER_E2E_KUBECONFIG=$(KIND_KUBECONFIG) VECTORIZER_E2E_OPERATOR_NAMESPACE=vectorizer-system \
	  $(PYTHON) -m pytest e2e; status=$$?; kind delete cluster --name $(KIND_CLUSTER); exit $$status

dev-cluster: ## bring up a local control plane + process kubelet + operator + sample cluster; prints how to use kubectl
	e2e/dev-cluster.sh up

dev-cluster-down: ## take the local development cluster down
	e2e/dev-cluster.sh down

lint: ## ruff lint and format check
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check dataplane operator tests benches e2e

typecheck: ## mypy --strict on the packages
	$(PYTHON) -m mypy

bench: ## data-plane benchmark: 100k x 128 clustered, 1,000 queries, beside a bare aiohttp + hnswlib server (~1 minute)
	$(PYTHON) -m benches.dataplane

bench-replication: ## replication throughput and replica lag, async and sync write concern
	$(PYTHON) -m benches.replication

bench-observability: ## search QPS with metrics/tracing off, on (exporter none), on (OTLP 10%)
	$(PYTHON) -m benches.observability

bench-ab: ## interleaved search A/B of this checkout against another: make bench-ab B=/path/to/checkout
	$(PYTHON) -m benches.ab --b-source $(B)

bench-filters: ## filtered counts and searches over 200k points, before and after payload indexes
	$(PYTHON) -m benches.filters

bench-snapshots: ## snapshot files of 100k points: made, recovered from, a node restored
	$(PYTHON) -m benches.snapshots

bench-sparse: ## sparse vectors over 100k documents: loading, memory, sparse and hybrid query latency
	$(PYTHON) -m benches.sparse

bench-named: ## several dense vectors per collection over 50k points: loading, memory, query latency, recall
	$(PYTHON) -m benches.named

bench-quick: ## a smaller benchmark run for a quick look
	$(PYTHON) -m benches.dataplane --n 20000 --queries 300 --concurrent-queries 3000 --updates 300

clean: ## remove caches and local data
	rm -rf data .mypy_cache .ruff_cache .pytest_cache benches/results
