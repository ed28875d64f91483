# The two entry points, each doing all setup on a fresh machine (Python 3.10+ with venv):
#   make book   set up .venv, execute every chapter of the book (params/book/$(PROFILE).yaml, default cpu)
#               and build its HTML offline into book/_build/html
#   make test   set up .venv and run the whole test suite (what CI runs), including nbval over every
#               chapter and the headless-browser test of the built book
PYTHON ?= python3
PROFILE ?= cpu
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BOOK_INSTALLED := $(VENV)/.book-installed
BENCH_INSTALLED := $(VENV)/.bench-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: book test bench smoke cpu clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	touch $@

$(BOOK_INSTALLED): $(INSTALLED)
	$(PIP) -e '.[test,book]'
	touch $@

$(BENCH_INSTALLED): $(INSTALLED)
	$(PIP) -e '.[test,bench]'
	touch $@

# The book: each chapter executed with papermill (progress per chapter; a failure names the chapter
# and its cell), then `jupyter-book build -W` with no network. PROFILE=smoke: seconds per chapter.
book: $(BOOK_INSTALLED)
	@OMP_NUM_THREADS=1 $(BIN)/python book/build.py --profile $(PROFILE)

# Every smoke config of params/synthetic: seconds each; results in runs/.
smoke: $(INSTALLED)
	@for config in params/synthetic/smoke/*.yaml; do $(BIN)/micmco train $$config --quiet || exit 1; done

# The cpu profile (vocabulary 1000): minutes each on a laptop.
cpu: $(INSTALLED)
	@for config in params/synthetic/cpu/*.yaml; do $(BIN)/micmco train $$config || exit 1; done

# The whole suite; tests/test_book.py builds the smoke book once and checks it (nbval, Chromium).
test: $(BOOK_INSTALLED)
	$(BIN)/python -m pytest

bench: $(BENCH_INSTALLED)
	$(BIN)/python benchmarks/step_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache book/_build
