# Two entry points (see README): `make dev` starts a local 3-node cluster, `make test` runs every test.
# Each creates the virtual environment in .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test lint screenshots bench bench-watch bench-leases bench-overload bench-client bench-kv bench-abuse bench-dns bench-etcd bench-peer bench-scale bench-consul bench-metrics clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/raftreg dev --config cluster-configs/local-3.toml

test: $(STAMP)
	.ci/ensure-browser
	.ci/ensure-systemd
	.ci/ensure-lab
	$(VENV)/bin/ruff check raftreg tests benchmarks examples docs
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check raftreg tests benchmarks examples docs
	$(VENV)/bin/mypy

# The web UI's screenshots in docs/ (README "Web UI"): a local cluster with sample data, headless Chromium.
screenshots: $(STAMP)
	.ci/ensure-browser
	$(VENV)/bin/python docs/screenshots.py

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/registry_bench.py

bench-watch: $(STAMP)
	$(VENV)/bin/python benchmarks/watch_bench.py

bench-leases: $(STAMP)
	$(VENV)/bin/python benchmarks/lease_bench.py

bench-overload: $(STAMP)
	$(VENV)/bin/python benchmarks/overload_bench.py

bench-client: $(STAMP)
	$(VENV)/bin/python benchmarks/client_bench.py

bench-kv: $(STAMP)
	$(VENV)/bin/python benchmarks/kv_bench.py

bench-abuse: $(STAMP)
	$(VENV)/bin/python benchmarks/abuse_bench.py

bench-dns: $(STAMP)
	$(VENV)/bin/python benchmarks/dns_bench.py

bench-etcd: $(STAMP)
	$(VENV)/bin/python benchmarks/etcd_sxs.py

bench-peer: $(STAMP)
	$(VENV)/bin/python benchmarks/peer_sxs.py

bench-scale: $(STAMP)
	$(VENV)/bin/python benchmarks/scale_sxs.py

bench-consul: $(STAMP)
	$(VENV)/bin/python benchmarks/consul_bench.py

bench-metrics: $(STAMP)
	$(VENV)/bin/python benchmarks/metrics_cost.py

clean:
	rm -rf $(VENV) raftreg-data
