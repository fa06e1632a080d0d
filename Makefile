# Entry points. Every target sets up .venv first (idempotent, ~1 min when new).
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?=
ARGS   ?=
# One Keras everywhere: tf_keras (Keras 2), as in the official TFX image.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# pytest-xdist workers; one file per worker (--dist loadfile), so a module's
# fixtures (one pipeline run each) run once. 2 workers on 2 cores: 14 min
# against 21 serially (most time is single-threaded imports and Beam).
# TEST_JOBS=0 runs in one process.
TEST_JOBS ?= 2
XDIST  := -n $(TEST_JOBS) --dist loadfile

.PHONY: setup run test test-all test-fast compile report bench clean lock

setup:
	@bash scripts/setup.sh

run: setup  ## Whole pipeline, locally, on the embedded taxi sample (or CONFIG=my.yaml).
	$(PY) -m pipeline run $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

test: setup  ## Unit, component and one end-to-end run per capability (CI).
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST) -m "not extended" --durations=15 $(ARGS)

test-all: setup  ## Everything, with the further end-to-end cases (tests/conftest.py).
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(ARGS)

test-fast: setup  ## Unit tests only.
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e and not slow" $(ARGS)

compile: setup  ## Kubeflow V2 pipeline spec into build/.
	$(PY) -m pipeline compile $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

report: setup  ## Regenerate the HTML run report from outputs/.
	$(PY) -m pipeline report $(ARGS)

bench: setup  ## Benchmarks; figures go to docs/performance.md.
	$(PY) -m bench $(ARGS)

lock:  ## Re-resolve requirements.lock from pyproject.toml (needs uv).
	uv pip compile pyproject.toml --extra test --extra bench --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 --no-header -o requirements.lock

clean:
	rm -rf outputs build
