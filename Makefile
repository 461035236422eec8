# The two commands of the README. Each makes (or reuses) the virtual environment .venv
# and installs what it needs into it, so nothing needs installing by hand first.
#   make demo   the whole chain, end to end, on a small real sample (CPU, minutes)
#   make test   the test suite (what CI runs)
#   make quick-test   the tests that train no model: a quick loop while working on the code

PYTHON_BASE ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test quick-test setup clean-demo

demo: $(STAMP)
	$(PYTHON) demo.py

# both cores (pytest-xdist): the session's shared fixtures are built once for the two workers (tests/conftest.py)
test: $(STAMP)
	$(PYTHON) -m pytest -n 2

quick-test: $(STAMP)
	$(PYTHON) -m pytest -m "not slow"

setup: $(STAMP)

# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build on a
# machine without a GPU. On Linux, PyPI's torch==2.13.0 is the CUDA build GPU users want.
# requirements.txt then installs the gpt2ja library (pip install -e .) with what it needs.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PYTHON) || $(PYTHON_BASE) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet "$(TORCH)"
	$(PYTHON) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

clean-demo:
	rm -rf runs/demo
