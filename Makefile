# The two commands of the README: `make dev` (the whole stack locally) and `make test` (every test).
# Both install what they need first; the Go test binaries are cached in ~/.cache/vmsnap between runs.
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup testbins test dev clean

setup: $(VENV)/.installed testbins

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

testbins:
	bash testbed/go/build-k8s.sh
	bash testbed/go/build-vcsim.sh

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

dev: setup
	$(VENV)/bin/vmsnap-dev $(DEV_ARGS)

clean:
	rm -rf $(VENV) .dev
