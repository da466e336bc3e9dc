# The README's two commands. Both set up .venv first (tools/misc/install_env.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install test test-fast demo demo-unlabeled env clean

install:
	bash tools/misc/install_env.sh

# one pytest-xdist worker per core; a worker idle at the end takes queued tests from the
# other (worksteal: the suite's longest tests take minutes)
test: install
	$(PY) -m pytest tests -q -n auto --dist worksteal

# the unit tests only (no subprocess or training runs)
test-fast: install
	$(PY) -m pytest tests -q -m "not slow" -n auto --dist worksteal

# FAST=1: the same steps on a tiny schedule (a smoke run of a few minutes)
demo: install
	$(PY) tools/misc/demo.py $(if $(filter-out 0,$(FAST)),--fast)

# labels on a quarter of the demo set, the rest given unlabeled: the student alone, distilled
# on the labeled quarter, distilled with the unlabeled images too, and distilled on the
# labeled quarter for as many iterations (one seed; a table)
demo-unlabeled: install
	$(PY) benchmarks/kd_gain.py demo-unlabeled --seeds 0

env: install
	$(PY) tools/misc/print_env.py

clean:
	rm -rf $(VENV) work_dirs .pytest_cache mmkd_yolo.egg-info mmkd_yolo/.mim
