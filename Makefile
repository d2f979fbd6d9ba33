# Two entry points a new user needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch==2.13.0 first: that CPU wheel is what we test against; a looser requirement pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
STORE  ?= file://./ff-results
WORKERS ?= 2

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ffctl run examples/tiny.yaml --store $(STORE) --workers $(WORKERS)
	$(BIN)/ffctl analyze $(STORE)/tiny --out demo-out
	@echo "report: demo-out/report.txt; table: demo-out/table.md (also .csv .tex .json); plots: demo-out/isoflop.png optimal.png contours.png residuals.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/demo_time.py

clean:
	rm -rf $(VENV) ff-results demo-out
