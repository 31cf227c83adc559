# make run: set up .venv if needed, then run the default scenario (compounding-noise).
# make test: same set-up, then lint and the test suite.
# The set-up installs the optional extras too (Ray for sweeps, pyarrow for Parquet, wandb), so that
# everything is tested.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch: a bare "torch" would pull a CUDA build of several GB.
TORCH := torch==2.13.0
CIRCUIT_TRACER := circuit-tracer==0.5.0

.PHONY: run test bench catalog clean

$(BIN)/superposim: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[dev,ray,parquet,wandb]"
	# circuit-tracer's graph schema checks our --format circuit-tracer files; its model stack
	# (transformer-lens, nnsight) is not needed for that, so it comes without its dependencies
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "$(CIRCUIT_TRACER)"
	touch $@

run: $(BIN)/superposim
	$(BIN)/superposim run compounding-noise --out runs/compounding-noise

test: $(BIN)/superposim
	$(BIN)/ruff check layers circuits scenarios tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(BIN)/superposim
	$(BIN)/python benchmarks/bench_trace.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_scale.py

# After changing a built-in scenario's record (description, parameters, ...): what list and help
# show without torch.
catalog: $(BIN)/superposim
	$(BIN)/python -c "from scenarios.engine.catalog import write_catalog as w; print('wrote', w())"

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
