# Two user-facing targets: `make demo` and `make test`. Both set up everything
# they need (virtualenv, Python deps, the pinned Node runtime, Debian packages).
VENV   := .venv
PY     := $(VENV)/bin/python
SEN    := $(VENV)/bin/sen
DEBS   := mosquitto chromium postgresql prometheus

.PHONY: demo test setup debs clean deb

demo: setup
	$(SEN) demo --concentrator

test: setup
	$(PY) -m pytest -n 3 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

setup: $(VENV)/.installed node_modules/.installed debs

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The gateway's Debian package (nfpm): build/deb/sen-gateway_<version>-1_<arch>.deb
deb: setup
	sh packaging/deb/build.sh

debs:
	@sh host_tools/ensure_debs.sh $(DEBS)

clean:
	rm -rf $(VENV) node_modules
