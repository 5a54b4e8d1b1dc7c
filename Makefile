# earthgraph: the two commands are `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QS := outputs/quickstart
# Offline W&B, quiet. Nothing here sets CPU threads: train.py sets its own (earthgraph.training.threads:
# the cores less one per DataLoader worker; --threads N), while evaluate.py and the data commands keep
# torch's and numpy's defaults, a thread per core.
export WANDB_MODE := offline
export WANDB_SILENT := true

.PHONY: setup quickstart small default default-data data gpu-data train evaluate test fuzz check-macos clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: any unpinned torch requirement would pull a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0 uv
	# The rest through uv (parallel, about 30 s faster than pip; it keeps the installed
	# torch); plain pip if uv cannot run here.
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e ".[test]" \
		|| $(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# The quickstart's OSSE: a year on the 32x64 test grid (the default is 64x128), with
# the prescribed travelling-wave atmosphere, the synthetic planet, and no wind or
# Argo observations. The quickstart model (8.5 min of CPU training) beats persistence at
# 24-48 h on this one; on the default chaotic atmosphere it does not yet (make default;
# README, "The default OSSE").
QS_SYSTEMS := synop mw_sounder geo_ir leo_ir mw_imager drifter seaice_conc snow soil_moisture
data: setup
	$(BIN)/python -m earthgraph.data generate --out $(QS)/data --days 365 --seed 0 --obs-scale 0.5 \
		--nlat 32 --nlon 64 --atmosphere waves --statics synthetic --systems $(QS_SYSTEMS)

train: setup
	rm -rf $(QS)/checkpoints $(QS)/wandb
	$(BIN)/python train.py fit --config configs/quickstart.yaml

evaluate: setup
	$(BIN)/python evaluate.py --checkpoint $(QS)/checkpoints/last.ckpt --data-dir $(QS)/data --out $(QS) --wandb-dir $(QS) --overwrite

quickstart: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory data && \
	$(MAKE) --no-print-directory train && \
	$(MAKE) --no-print-directory evaluate && \
	echo "quickstart finished in $$(( $$(date +%s) - start )) s; outputs in $(QS)/"

# About 30 minutes more on 2 CPU cores: the quickstart data, a longer run with the water
# budget conserved (configs/small.yaml), scored like the quickstart.
small: setup
	test -d $(QS)/data || $(MAKE) --no-print-directory data
	$(BIN)/python train.py fit --config configs/small.yaml
	$(BIN)/python evaluate.py --checkpoint outputs/small/checkpoints/last.ckpt --data-dir $(QS)/data --out outputs/small --overwrite \
		--wandb-dir outputs/small

# The default OSSE: the chaotic vorticity atmosphere on the real planet (climt's land-sea mask and
# orography, fetched from PyPI), every observing system (AMV winds and Argo floats too) at half
# density on the 64x128 grid. About 2.5 minutes.
DEF := outputs/default
default-data: setup
	$(BIN)/python -m earthgraph.data fetch-statics
	$(BIN)/python -m earthgraph.data generate --out $(DEF)/data --days 365 --seed 0 --obs-scale 0.5 --statics climt

# The default OSSE end to end: its data, at most 30 minutes of CPU training (configs/default.yaml),
# then the scorecard at 12 h to 5 days and the year-long diagnostic.
default: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory default-data && \
	rm -rf $(DEF)/checkpoints $(DEF)/wandb && \
	$(BIN)/python train.py fit --config configs/default.yaml && \
	$(BIN)/python evaluate.py --checkpoint $(DEF)/checkpoints/last.ckpt --data-dir $(DEF)/data --out $(DEF) --overwrite \
		--wandb-dir $(DEF) --leads 12 24 48 72 96 120 && \
	echo "default finished in $$(( $$(date +%s) - start )) s; outputs in $(DEF)/"

# Data for configs/gpu.yaml: the default chaotic nature run on its 64x128 grid and the real
# planet (climt), every observing system at full density (about 34,000 observations per window).
gpu-data: setup
	$(BIN)/python -m earthgraph.data generate --out outputs/gpu/data --days 365 --seed 0 --statics climt

test: setup
	$(BIN)/python -m pytest -q

# The readers' property-based tests with many fresh cases (make test replays a fixed few);
# the statistics say how many cases each test ran and how they ended.
fuzz: setup
	$(BIN)/python -m pytest -q tests/test_fuzz_*.py --hypothesis-profile=fuzz --hypothesis-show-statistics

# The install resolves on macOS (arm64, macOS 14+) from wheels alone, triton left out by its
# environment marker: uv resolves for that platform from here (no Mac needed).
check-macos: setup
	printf 'torch==2.13.0\n.[test]\n' | MACOSX_DEPLOYMENT_TARGET=14.0 $(BIN)/uv pip compile - -q -o /dev/null \
		--python-platform aarch64-apple-darwin --python-version 3.11 --only-binary :all: \
		&& echo "check-macos: every requirement has a macOS arm64 wheel"

# Caches outside the checkout (the meshes' graphs, rebuilt when missing; climt's static files,
# fetched when missing): no command's output depends on whether they are there.
CACHES := $(HOME)/.cache/earthgraph
clean:
	rm -rf outputs wandb lightning_logs .pytest_cache
	@if [ -d $(CACHES) ]; then echo "kept (make distclean removes them, and .venv):"; du -sh $(CACHES)/* 2>/dev/null; fi

distclean: clean
	rm -rf $(CACHES) $(VENV)
