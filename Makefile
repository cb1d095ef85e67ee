# The two commands: `make run` (the system on its embedded default) and `make test`.
VENV ?= .venv
STAMP := $(VENV)/.bootstrapped
CONFIG ?= examples/demo.toml
STATE ?= state

.PHONY: run run-pool test lint unit fuzz bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) ./scripts/bootstrap.sh
	touch $(STAMP)

## run: embedded NATS + every service + the demo queue + a libvirt test cloud (Ctrl-C stops)
run: $(STAMP)
	$(VENV)/bin/cs up --config $(CONFIG) --state-dir $(STATE)

## run-pool: the same against a real HTCondor pool (Debian's HTCondor in a chroot, needs root):
## the poller reads its schedd; examples/pool-jobs.sub is submitted as alice
run-pool: $(STAMP)
	PYTHONPATH=. $(VENV)/bin/python -m tests.condor_pool up
	PYTHONPATH=. $(VENV)/bin/python -m tests.condor_pool submit alice examples/pool-jobs.sub
	CONDOR_CONFIG=$(CURDIR)/.cache/condor-pool-manual/condor_config \
	    $(VENV)/bin/cs up --config examples/pool.toml --state-dir $(STATE)

## test: lint, types, import contracts, then the whole suite (unit, integration, end-to-end,
## real VMs under QEMU: scripts/qemu-host.sh installs and starts libvirt + QEMU, needs root;
## scripts/browser.sh installs Chromium and tmux for the status page and terminal tests;
## scripts/nats-js.sh the official JavaScript NATS client for the tracing test;
## scripts/container-host.sh podman and runc to build and run the single container;
## scripts/slurm-host.sh Slurm and munge for the Slurm provider's one-node cluster)
test: $(STAMP) lint
	./scripts/qemu-host.sh
	./scripts/container-host.sh
	./scripts/slurm-host.sh
	./scripts/browser.sh
	./scripts/nats-js.sh
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint --config container/hadolint.yaml container/Dockerfile
	$(VENV)/bin/shellcheck -x scripts/*.sh testbed/slurm/*.sh container/entrypoint.sh

## unit: the fast tests only
unit: $(STAMP)
	$(VENV)/bin/pytest -m "not e2e and not slow"

## fuzz: the property tests with new random examples, SEEDS seeds (200) in a row;
## FUZZ= narrows them (a pytest selection, e.g. FUZZ="tests/test_fuzz.py -k classad2")
fuzz: $(STAMP)
	SEEDS=$(or $(SEEDS),200) VENV=$(VENV) ./scripts/fuzz.sh $(FUZZ)

clean:
	rm -rf $(VENV) $(STATE) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

## bench: benchmarks that print figures (`name=value` lines)
bench: $(STAMP)
	$(VENV)/bin/python bench/plan_bench.py
	$(VENV)/bin/python bench/poller_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/latency_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/libvirt_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/rss_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/registry_read_bench.py
	PYTHONPATH=. $(VENV)/bin/python -W ignore bench/openstack_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/slurm_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/condor_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/pool_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/scale_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/replica_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/replay_bench.py
	PYTHONPATH=. $(VENV)/bin/python bench/container_bench.py
