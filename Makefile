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

.PHONY: run test docs docs-runs bench catalog clean

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
	$(BIN)/ruff check layers circuits scenarios tests benchmarks examples docs/_hooks
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site-check
	$(BIN)/python -m pytest -q

# The docs site (mkdocs, material, mkdocstrings) into site/.
docs: $(BIN)/superposim
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "open site/index.html"

# The default run of every built-in scenario, as the scenario pages show them (about 15 minutes
# on two cores; `make docs-runs NAMES="u-and toy-models"` for some); the default-size tests check
# these copies against the code.
NAMES ?= $$($(BIN)/python -c "from scenarios.engine.catalog import BUILTIN; print(*BUILTIN)")
docs-runs: $(BIN)/superposim
	for name in $(NAMES); do $(BIN)/superposim run $$name --quiet --out docs/runs/$$name || exit 1; done

# Benchmarks (scripts, not timed tests; about 25 minutes on two cores): the roofline report, the
# tracer against plain loops, sweeps, the streamed relay's growth, circuits in superposition at scale,
# the counter-based draws against torch's.
bench: $(BIN)/superposim
	$(BIN)/python benchmarks/roofline.py
	$(BIN)/python benchmarks/bench_trace.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_cis_scale.py
	$(BIN)/python benchmarks/bench_draws.py

# After changing a built-in scenario's record (description, parameters, ...): what list and help
# show without torch.
catalog: $(BIN)/superposim
	$(BIN)/python -c "from scenarios.engine.catalog import write_catalog as w; print('wrote', w())"

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache
