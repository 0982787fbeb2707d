# Every target that runs code first makes .venv and installs the project into it (once: a stamp
# file records the install and is refreshed only when requirements.txt or pyproject.toml change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DATA_DIR ?= $(or $(LRSFLOWS_DATA_DIR),data)
RUNS ?= outputs
TEST_WORKERS ?= 2  # pytest-xdist workers for make test (2 cores here: 6.8 min instead of 11.6)
DEMO_DIR := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
PAPER_TABULAR := experiment=paper/power,paper/gas,paper/hepmass,paper/miniboone,paper/bsds300 \
	model=lrs,rq_nsf,q_nsf model.arch=coupling,autoregressive

PAPER_IMAGES := outputs/paper-images

.PHONY: setup demo test lint format bench data tables report paper-tabular paper-images tensorboard clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# LRS, RQ-NSF and Q-NSF on two 2-D densities (one multirun), then their table.
# The multirun reports job k/N with an ETA, and ends with the table and $(DEMO_DIR)/report.html; interrupted, it
# prints the command that continues it.
demo: $(STAMP)
	$(BIN)/python -m lrsflows -m experiment=demo trainer.progress_bar=false hydra.sweep.dir=$(DEMO_DIR)
	@echo "TensorBoard logs under $(DEMO_DIR): make tensorboard RUNS=$(DEMO_DIR)"

# tests/test_report.py opens the HTML report in headless Chromium (Debian's package): installed here when missing;
# where it cannot be (no root, no network), that test is skipped and says why.
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
		echo "chromium could not be installed: tests/test_report.py's browser checks will be skipped"
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Formatting and lint (ruff, configured in pyproject.toml); `make format` applies the formatter.
lint: $(STAMP)
	$(BIN)/ruff format --check src scripts tests
	$(BIN)/ruff check src scripts tests

format: $(STAMP)
	$(BIN)/ruff format src scripts tests
	$(BIN)/ruff check --fix src scripts tests

# The bench extra (nflows 0.14 and zuko 1.6, the peer flows) once, refreshed when pyproject.toml changes.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# Kernels, flows beside nflows and zuko, allocator, a step's parts, targets -> outputs/bench/report.md (~5 min, 2 idle
# cores); then the paper presets' compiled step -> outputs/bench/compile.md (~5 min: two compilations per preset).
bench: $(BENCH_STAMP)
	$(BIN)/python scripts/bench.py --out outputs/bench/report.md
	$(BIN)/python scripts/bench_compile.py --image-batch 32 --out outputs/bench/compile.md

# The MAF archive (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) from Zenodo into $(DATA_DIR), checked by MD5.
data: $(STAMP)
	$(BIN)/lrsflows-data --data-dir $(DATA_DIR)

# Markdown, LaTeX and CSV tables of every results.json under $(RUNS), beside the paper's rows.
tables: $(STAMP)
	$(BIN)/lrsflows-tables $(RUNS)

# One self-contained $(RUNS)/report.html: those tables, learning curves, each run's pictures, config and provenance.
report: $(STAMP)
	$(BIN)/lrsflows-report $(RUNS)

# The paper's tabular grid: 5 datasets x 3 models x 2 arches, 30 runs of 200k-400k steps (a GPU each).
paper-tabular: $(STAMP)
	@echo "paper-tabular needs power, gas, hepmass, miniboone and BSDS300 under $(DATA_DIR) (make data) and a GPU;"
	@echo "30 runs of 200k-400k steps run one after another (add hydra/launcher=... to spread them)."
	$(BIN)/lrsflows-data --data-dir $(DATA_DIR) --check
	$(BIN)/python -m lrsflows -m $(PAPER_TABULAR) paths.data_dir=$(DATA_DIR) hydra.sweep.dir=outputs/paper-tabular
	$(BIN)/lrsflows-tables outputs/paper-tabular

# The paper's image grid: CIFAR-10 and ImageNet 64x64 for LRS and RQ-NSF, MNIST for LRS (200k steps each).
paper-images: $(STAMP)
	@echo "paper-images needs cifar-10/cifar-10-batches-py (lrsflows-data --dataset cifar10), imagenet64_fast/ or"
	@echo "imagenet64/ (manual: lrsflows-data --dataset imagenet64 prints the steps) and mnist/MNIST/raw under $(DATA_DIR),"
	@echo "and GPUs: 5 runs of 200k steps, ImageNet64 on several GPUs in the original (days on one)."
	$(BIN)/python -m lrsflows -m experiment=paper/cifar10,paper/imagenet64 model=lrs,rq_nsf paths.data_dir=$(DATA_DIR) hydra.sweep.dir=$(PAPER_IMAGES)
	$(BIN)/python -m lrsflows -m experiment=paper/mnist model=lrs paths.data_dir=$(DATA_DIR) hydra.sweep.dir=$(PAPER_IMAGES)
	$(BIN)/lrsflows-tables $(PAPER_IMAGES)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir $(RUNS)

clean:
	rm -rf $(VENV) .pytest_cache
