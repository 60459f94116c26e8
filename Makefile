# Set-up and everyday commands. Each target installs what it needs first (from uv.lock), so a
# fresh clone needs only Python 3.11+ and make.
VENV   := .venv
PYTHON ?= python3
UV_VERSION := 0.13.9
LIBREDWG := documents/libredwg/node_modules/.installed

.PHONY: run test lint bench env libredwg

run: $(VENV)/.synced          ## convert the sample drawings in data/samples into out/
	$(VENV)/bin/cadpipe run

test: $(VENV)/.synced         ## run the test suite (installs Debian's chromium, librecad, curl and jq if missing)
	.ci/install-test-tools
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory libredwg; \
	else echo "npm not found: the tests of the opt-in libredwg DWG reader are skipped"; fi
	$(VENV)/bin/python -m pytest

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
