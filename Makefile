# The two entry points, each doing all setup on a fresh machine (Python 3.10+ with venv):
#   make book   set up .venv, execute every chapter of the book (params/book/$(PROFILE).yaml, default cpu)
#               and build its HTML offline into book/_build/html
#   make reproduce PROFILE=cpu|paper [FIGURE=N]   rerun the sweeps behind the synthetic figures (resumable)
#   make test   set up .venv and run the whole test suite (what CI runs), including nbval over every
#               chapter and the headless-browser test of the built book
PYTHON ?= python3
PROFILE ?= cpu
# Chapters `make book` executes at once (one thread each).
JOBS ?= 2
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BOOK_INSTALLED := $(VENV)/.book-installed
BENCH_INSTALLED := $(VENV)/.bench-installed
# Exact versions from constraints.txt (torch 2.13.0, the CPU build on local disk); pyproject.toml has ranges.
CONSTRAINTS := constraints.txt
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS)

.PHONY: book test test-fast bench bench-batch bench-ptb gpu-check smoke cpu clean reproduce

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test,sweep]'
	touch $@

$(BOOK_INSTALLED): $(INSTALLED)
	$(PIP) -e '.[test,sweep,book]'
	touch $@

$(BENCH_INSTALLED): $(INSTALLED)
	$(PIP) -e '.[test,sweep,bench]'
	touch $@

# The book: each chapter executed with papermill (progress per chapter; a failure names the chapter
# and its cell), then `jupyter-book build -W` with no network. PROFILE=smoke: seconds per chapter.
# JOBS chapters at once (default 2, one thread each; JOBS=1: in order, with a line as each one starts).
book: $(BOOK_INSTALLED)
	@OMP_NUM_THREADS=1 $(BIN)/python book/build.py --profile $(PROFILE) --jobs $(JOBS)

# Re-run the studies behind the synthetic figures (2-7, 15, 26, 27) with the sweep tool; rerunning
# continues them (finished trials kept, interrupted ones resumed). Then `make book` plots the new results.
#   make reproduce PROFILE=cpu [FIGURE=N]     results/cpu/, two workers of one thread each (2 cores)
#   make reproduce PROFILE=paper [FIGURE=N]   results/paper/, the paper's settings, one worker on the GPU training
#                                             a batch of trials at once (--batch auto: as many as fit in 80% of the
#                                             GPU's free memory by the memory estimate, at most 64; 1 without a GPU)
FIGURE ?=
WORKERS ?= $(if $(filter paper,$(PROFILE)),1,2)
BATCH ?= $(if $(filter paper,$(PROFILE)),auto,1)
#   make reproduce PROFILE=cpu FIGURE=N DRY_RUN=1   only list the studies, their trials done and left, and the
#                                                   projected time; runs and writes nothing
DRY_RUN ?=
reproduce: $(INSTALLED)
	@studies=$$($(BIN)/python -m micmco.book studies $(PROFILE) $(FIGURE)) || exit 2; \
	for study in $$studies; do \
	  [ -z "$(DRY_RUN)" ] && echo "== $$study"; \
	  OMP_NUM_THREADS=1 $(BIN)/micmco sweep $$study --workers $(WORKERS) --threads $(WORKERS) \
	    $(if $(filter-out 1,$(BATCH)),--batch $(BATCH)) $(if $(DRY_RUN),--dry-run); \
	  code=$$?; [ $$code -eq 130 ] && exit 130; [ $$code -ne 0 ] && failed="$$failed $$study"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed (rerun to continue)"; exit 1; fi; \
	[ -n "$(DRY_RUN)" ] && exit 0; \
	echo "done: make book PROFILE=cpu shows the results (chapters read results/<profile>/)"

# Every smoke config of params/synthetic: seconds each; results in runs/.
smoke: $(INSTALLED)
	@for config in params/synthetic/smoke/*.yaml; do $(BIN)/micmco train $$config --quiet || exit 1; done

# The cpu profile's single runs (vocabulary 1000; NOTES.md's table): minutes each on a laptop. The trial-*.yaml
# configs (vocabulary 200) are the bases of the cpu sweeps: `make reproduce PROFILE=cpu` runs them.
cpu: $(INSTALLED)
	@for config in $$(ls params/synthetic/cpu/*.yaml | grep -v /trial-); do $(BIN)/micmco train $$config || exit $$?; done

# The whole suite; tests/test_book.py builds the smoke book once and checks it (nbval, Chromium).
# TEST_JOBS test processes (pytest-xdist; the book's tests stay together in one): the tests are one thread
# each, so two use CI's two cores (measured: 613 s against 844-925 s in one process). TEST_JOBS=0: one process.
TEST_JOBS ?= 2
test: $(BOOK_INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadgroup

# Everyday work: the suite without the slow end-to-end runs and the tests of the built book (minutes).
test-fast: $(BOOK_INSTALLED)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadgroup -m "not slow and not book"

bench: $(BENCH_INSTALLED)
	$(BIN)/python benchmarks/step_time.py

# Many trials in one process: trials per hour at N = 1, 4, 16, 64 trials per batch against one per process,
# synthetic K = 1 and K = 16 at the cpu trial size and the paper's, ratios measured side by side (minutes).
bench-batch: $(INSTALLED)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/batch_throughput.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/adam_masked.py

# PTB: sentence-tokens/s at K = 16 against K = 1 and against a loop over the samples, the cost of
# recurrent-state dropout, and peak memory per K against the preflight estimate (needs ../shared/data/ptb).
bench-ptb: $(INSTALLED)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ptb_step_time.py

# One command for a GPU box (at most 8 minutes), with the box's own Python and torch (no venv: installing
# would replace its CUDA build): versions and precision, the host-sync audit, ms per step of both tasks, GPU
# against CPU losses, a K = 100 PTB evaluation against its memory estimate, a run killed and resumed. Figures
# in $(GPU_CHECK_OUT) (its table's last line names it); exit 0 passed, 1 a check failed, 5 no CUDA, 6 incomplete.
GPU_CHECK_OUT ?= runs/gpu-check.json
gpu-check:
	PYTHONPATH=src $(PYTHON) benchmarks/gpu_check.py --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache book/_build
