# mono_depth_ros: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=
MODEL  ?=
INPUT  ?=

.PHONY: venv demo test typecheck clean

venv: $(STAMP)

$(STAMP): setup.py requirements/cpu.txt requirements/dev.txt requirements/rclpy.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=23"
	$(PIP) install --quiet -r requirements/cpu.txt
	$(PIP) install --quiet -e ".[all,dev]"
	$(PIP) install --quiet --no-deps -r requirements/dev.txt
	$(PIP) install --quiet -r requirements/rclpy.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m mono_depth_ros demo $(if $(MODEL),--model "$(MODEL)") $(if $(INPUT),--input "$(INPUT)") $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

typecheck: $(STAMP)
	$(PY) benchmarks/typecheck_tensorrt.py

clean:
	rm -rf $(VENV) out .pytest_cache
