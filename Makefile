# Set-up and everyday commands. Each target installs what it needs first (from uv.lock), so a
# fresh clone needs only Python 3.11+ and make.
VENV   := .venv
PYTHON ?= python3
UV_VERSION := 0.13.9
LIBREDWG := documents/libredwg/node_modules/.installed
# Where `make run` writes: `make run OUT=/tmp/cadpipe-out` for another folder.
OUT ?= out

.PHONY: run test test-unit test-e2e test-tools lint bench env libredwg

run: $(VENV)/.synced          ## convert the sample drawings in data/samples into out/ (or OUT)
	$(VENV)/bin/cadpipe run --out $(OUT)

# Two test files at a time (pytest-xdist, one file per worker so a file's fixtures are made once):
# most end-to-end tests wait on servers, subprocesses and settle times rather than compute.
XDIST := -n 2 --dist loadfile

test: test-tools              ## run the whole test suite: tests/unit and tests/e2e, two files at a time (installs Debian's chromium, librecad, curl and jq if missing: needs root or sudo, else says so and those tests skip)
	$(VENV)/bin/python -m pytest $(XDIST)

test-unit: $(VENV)/.synced    ## the unit tests only (tests/unit: no corpus, no server, no browser; seconds)
	$(VENV)/bin/python -m pytest tests/unit

test-e2e: test-tools          ## the end-to-end tests only (tests/e2e: corpus, Prefect, browser, CLI, LibreCAD)
	$(VENV)/bin/python -m pytest $(XDIST) tests/e2e

# What the end-to-end tests drive: Debian's chromium, librecad, curl and jq if missing, and the
# opt-in LibreDWG reader where npm is installed.
test-tools: $(VENV)/.synced
	.ci/install-test-tools
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory libredwg; \
	else echo "npm not found: the tests of the opt-in libredwg DWG reader are skipped"; fi

lint: $(VENV)/.synced         ## ruff (lint, then format as a check) and mypy, configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.synced        ## orchestration overhead over the corpus replicated to 1,000 files
	$(VENV)/bin/python bench/orchestration.py

env: $(VENV)/.synced

# Opt-in DWG reader (GPL-3.0): LibreDWG as WebAssembly, from the npm registry into
# documents/libredwg/node_modules; needs Node.js 20+. Enable it with [dwg] readers in cadpipe.toml.
libredwg: $(LIBREDWG)

$(LIBREDWG): documents/libredwg/package.json documents/libredwg/package-lock.json
	npm ci --prefix documents/libredwg --no-audit --no-fund
	touch $@

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on our CI machines) every
# process would otherwise recompile Prefect, pandas and ezdxf from source (~4 s each).
$(VENV)/.synced: pyproject.toml uv.lock Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv sync --frozen --inexact --extra test --compile-bytecode --python $(VENV)/bin/python
	$(VENV)/bin/python -m compileall -q documents extractors converters editors engine flows
	touch $@
