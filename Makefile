# The README's two commands. Both set up .venv first (tools/misc/install_env.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install test demo env clean

install:
	bash tools/misc/install_env.sh

test: install
	$(PY) -m pytest tests -q

demo: install
	$(PY) tools/misc/demo.py

env: install
	$(PY) tools/misc/print_env.py

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
