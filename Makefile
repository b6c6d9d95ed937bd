# Two commands for a newcomer: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Microsoft's Python worker library (azure-functions-runtime) needs Python 3.13: the local
# host runs the app in a second environment, as Azure runs it in the worker's.
PYTHON_WORKER ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" --version >/dev/null 2>&1 && { echo "$$p"; break; }; done)
WORKER_VENV := .venv-worker
WPY := $(WORKER_VENV)/bin/python
WORKER_STAMP := $(WORKER_VENV)/.installed
PURELIB := import sysconfig; print(sysconfig.get_paths()["purelib"])

# Debian packages the tests and benchmarks use: the OCF agent under ocf-tester, its metadata
# against the DTD, shellcheck for the cluster scripts, GNU time for peak memory, and a real
# Corosync + Pacemaker cluster for tests/cluster and bench.pacemaker (no pcs: it pulls in Ruby).
DEB_PACKAGES := resource-agents libxml2-utils shellcheck time pacemaker pacemaker-cli-utils corosync
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo demo-pacemaker test bench lint format venv system-deps clean package

venv: $(STAMP)

# Setting up is quiet (pip's output goes to a log, shown only when it fails), so that
# `make demo` prints the demo and nothing of the package manager.
$(STAMP): requirements.txt requirements-dev.txt $(WORKER_STAMP)
	@echo "setting up $(VENV) (log: $(VENV)/install.log)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -r requirements-dev.txt && \
	  $(PY) emulator/host/worker/install_protos.py $(WPY) "$$($(PY) -c '$(PURELIB)')"; \
	} >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# The worker's environment: the app's requirements (with the worker library) on Python 3.13,
# and the FunctionRpc modules for our proxy worker (emulator/host/worker/).
$(WORKER_STAMP): requirements.txt requirements-worker.txt emulator/host/worker/install_protos.py
	@test -n "$(PYTHON_WORKER)" || { echo "Python 3.13 not found: install it or set PYTHON_WORKER"; exit 1; }
	@echo "setting up $(WORKER_VENV) (log: $(WORKER_VENV)/install.log)"
	@test -x $(WPY) || $(PYTHON_WORKER) -m venv $(WORKER_VENV)
	@{ $(WPY) -m pip install --quiet --upgrade pip && \
	  $(WPY) -m pip install --quiet -r requirements-worker.txt && \
	  $(WPY) emulator/host/worker/install_protos.py $(WPY) "$$($(WPY) -c '$(PURELIB)')"; \
	} >$(WORKER_VENV)/install.log 2>&1 || { cat $(WORKER_VENV)/install.log; exit 1; }
	@touch $(WORKER_STAMP)

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: system-deps $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: $(STAMP)
	@$(PY) -m demo

# One failover of a real Pacemaker cluster (namespaces on this machine, root), as its client saw it.
demo-pacemaker: system-deps $(STAMP)
	$(PY) -m demo.pacemaker

# Benchmarks against the vendor scripts; writes docs/benchmarks.md (BENCH_ARGS=--quick).
bench: system-deps $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# The zip a publish would send (the app only; see .funcignore): dist/app.zip.
package: $(STAMP)
	$(PY) infra/package.py --output dist/app.zip

clean:
	rm -rf $(VENV) $(WORKER_VENV) .state .pytest_cache .ruff_cache dist
