# One entry point for set-up, the demo job and the tests. See README.md.
#   make demo      set up .venv (first time only) and run the main job
#   make test      set up .venv (first time only) and run the test suite
#   make test-slow only the checks marked `slow` (CI runs `make test`, then this)
#   make test-all  the suite including checks marked `slow`
#   MMCV_FULL=1 make venv   full mmcv 2.1.0 with compiled ops, built here by tools/build_mmcv_full.py
#                           (CPU ops: ~16 min on 2 free cores, over an hour on busy ones; MAX_JOBS caps parallel compiles;
#                           CUDA ops too when a CUDA toolkit and a GPU or TORCH_CUDA_ARCH_LIST are there).
#                           A venv built full stays full for later `make` runs: `make clean-venv` to go back.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
FULL   := $(or $(MMCV_FULL),$(wildcard $(VENV)/.mmdas-installed-full))
STAMP  := $(VENV)/.mmdas-installed$(if $(FULL),-full,)
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test test-slow test-all data clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" "setuptools<82" wheel
	# torch first, so no later requirement pulls another build
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
ifeq ($(FULL),)
	$(PY) -m pip install -q "mmcv-lite==2.1.0"
else
	$(PY) -m pip install -q ninja
	$(PY) tools/build_mmcv_full.py
endif
	$(PY) -m pip install -q -e ".[tests]"
	touch $@

data: venv
	$(PY) tools/make_embedded_dataset.py

demo: venv
	$(PY) tools/run_demo.py

test: venv
	$(PY) -m pytest -q -m "not slow" tests

test-slow: venv
	$(PY) -m pytest -q -m slow tests

test-all: venv
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
