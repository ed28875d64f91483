# The two entry points, each doing all setup on a fresh machine (Python 3.10+ with venv):
#   make book   set up .venv and run the main job (until the book exists: the synthetic smoke experiment)
#   make test   set up .venv and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed

.PHONY: book test bench smoke cpu clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(BENCH_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $@

book: smoke

# Every smoke config of params/synthetic: seconds each; results in runs/.
smoke: $(INSTALLED)
	@for config in params/synthetic/smoke/*.yaml; do $(BIN)/micmco train $$config --quiet || exit 1; done

# The cpu profile (vocabulary 1000): minutes each on a laptop.
cpu: $(INSTALLED)
	@for config in params/synthetic/cpu/*.yaml; do $(BIN)/micmco train $$config || exit 1; done

test: $(INSTALLED)
	$(BIN)/python -m pytest

bench: $(BENCH_INSTALLED)
	$(BIN)/python benchmarks/step_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache
