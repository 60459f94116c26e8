# Set-up and everyday commands. Each target installs what it needs first (from uv.lock), so a
# fresh clone needs only Python 3.11+ and make.
VENV   := .venv
PYTHON ?= python3
UV_VERSION := 0.13.9

.PHONY: run test bench env

run: $(VENV)/.synced          ## convert the sample drawings in data/samples into out/
	$(VENV)/bin/cadpipe run

test: $(VENV)/.synced         ## run the test suite (installs Debian's chromium, librecad, curl and jq if missing)
	.ci/install-test-tools
	$(VENV)/bin/python -m pytest

bench: $(VENV)/.synced        ## orchestration overhead over the corpus replicated to 1,000 files
	$(VENV)/bin/python bench/orchestration.py

env: $(VENV)/.synced

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on our CI machines) every
# process would otherwise recompile Prefect, pandas and ezdxf from source (~4 s each).
$(VENV)/.synced: pyproject.toml uv.lock Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv sync --frozen --inexact --extra test --compile-bytecode --python $(VENV)/bin/python
	$(VENV)/bin/python -m compileall -q flows converters extractors editors
	touch $@
