# The two commands of the README: `make dev` (the whole stack locally) and `make test` (every test).
# Both install what they need first; the Go test binaries are cached in ~/.cache/vmsnap between runs.
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup testbins test unit pods compose browser dev clean lock wheelhouse image

setup: $(VENV)/.installed $(VENV)/bin/vmsnap-dev testbins

# The venv holds the locked versions: constraints.txt (the product's dependencies, exactly what the image
# installs) and constraints-test.txt (what the test extra adds); `make lock` regenerates both.
$(VENV)/.installed: pyproject.toml constraints.txt constraints-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]' -c constraints.txt -c constraints-test.txt
	touch $@

# the dev command is not part of the product's package: a wrapper on the venv's PATH runs it from the clone
$(VENV)/bin/vmsnap-dev: $(VENV)/.installed
	printf '#!/bin/sh\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec "%s/$(VENV)/bin/python" -m testbed.dev "$$@"\n' \
		"$(CURDIR)" "$(CURDIR)" > $@
	chmod +x $@

testbins:
	bash testbed/go/build-k8s.sh
	bash testbed/go/build-vcsim.sh
	bash testbed/go/build-temporal.sh
	bash testbed/go/build-ui-server.sh
	bash testbed/go/build-compose.sh

# Two test sessions side by side (pytest-xdist), each with test-bed parts of its own; the tiers that share a
# machine-wide part stay in one session (tests/conftest.py). TEST_SESSIONS=1 runs one session in this process.
TEST_SESSIONS ?= 2
test: setup
	$(VENV)/bin/pytest $(if $(filter-out 0 1,$(TEST_SESSIONS)),-n $(TEST_SESSIONS) --dist loadgroup) $(PYTEST_ARGS)

# Fast feedback on logic: the pure helpers and the workflows with fake activities; no Kubernetes, no vCenter, no Go
# builds (the Temporal dev server comes with the Python package and the fixtures start it). Under a minute, in
# TEST_SESSIONS sessions side by side like `make test` (one session alone takes about twice as long).
unit: $(VENV)/.installed
	$(VENV)/bin/pytest tests/unit tests/workflows $(if $(filter-out 0 1,$(TEST_SESSIONS)),-n $(TEST_SESSIONS)) $(PYTEST_ARGS)

# The pod tier alone (tests/pods, marker `pods`; `make test` runs it too): the image, a kubelet with its own
# containerd, and the standalone overlay applied with kubectl, shared by the tests. Needs root, docker.io,
# containerd and containernetworking-plugins (.ci/run installs them).
pods: setup
	$(VENV)/bin/pytest tests/pods $(PYTEST_ARGS)

# docker-compose.yml brought up with `docker compose` (marker `compose`; `make test` runs it too): the plugin built
# from the Go module proxy (testbed/go/build-compose.sh), the local base image, the test bed's Go binaries; then
# with docker-compose.production.yml (the four-service Temporal on PostgreSQL, the UI).
compose: setup
	$(VENV)/bin/pytest tests/deploy/test_compose_up.py tests/deploy/test_compose_production.py $(PYTEST_ARGS)

# The browser tier alone (tests/browser, marker `browser`; `make test` runs it too): the Temporal UI of the dev server
# and of the cluster's UI server in Debian's Chromium (.ci/run installs it), a screenshot per page.
browser: setup
	$(VENV)/bin/pytest tests/browser $(if $(filter-out 0 1,$(TEST_SESSIONS)),-n $(TEST_SESSIONS) --dist loadgroup) $(PYTEST_ARGS)

dev: setup
	$(VENV)/bin/vmsnap-dev $(DEV_ARGS)

# Regenerate constraints.txt and constraints-test.txt from pyproject.toml's pins (needs the index).
lock:
	PYTHON=$(PYTHON) bash testbed/lock.sh

# wheelhouse/: the locked dependencies as wheels (needs the index once), so that `docker build` is offline.
wheelhouse: $(VENV)/.installed
	$(VENV)/bin/python -c 'from testbed.image import build_wheelhouse; build_wheelhouse()'

# The image on this machine: starts dockerd if none answers, makes the local Debian base once (mmdebstrap: no
# registry here), fills the wheelhouse, builds IMAGE (default vmsnap:local). IMAGE_ARGS="--base python:3.11.13-slim-bookworm"
# builds on another base.
IMAGE ?= vmsnap:local
image: $(VENV)/.installed
	$(VENV)/bin/python -m testbed.image --tag $(IMAGE) $(IMAGE_ARGS)

clean:
	rm -rf $(VENV) .dev
