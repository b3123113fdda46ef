# mono_depth_ros: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=
MODEL  ?=
INPUT  ?=

# The full-ROS test tier: the relocatable ROS 2 Jazzy bundle (../shared/ros2, on the project's machines)
# unpacked into .ros2/ with its own venv, plus what a ROS user pip-installs (requirements/ros.txt) under the
# bundle's pins (numpy 1.26 for its compiled modules). `make test` sets it up when the bundle is there.
ROS2_BUNDLE ?= ../shared/ros2
ROS2_DIR    ?= .ros2
ROS2_STAMP   = $(ROS2_DIR)/.installed

.PHONY: venv ros2 demo test typecheck clean

venv: $(STAMP)

$(STAMP): setup.py requirements/cpu.txt requirements/dev.txt requirements/rclpy.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=23"
	$(PIP) install --quiet -r requirements/cpu.txt
	$(PIP) install --quiet -e ".[all,dev]"
	$(PIP) install --quiet --no-deps -r requirements/dev.txt
	$(PIP) install --quiet -r requirements/rclpy.txt
	touch $(STAMP)

ros2: $(ROS2_STAMP)

$(ROS2_STAMP): requirements/cpu.txt requirements/ros.txt $(wildcard $(ROS2_BUNDLE)/setup.sh $(ROS2_BUNDLE)/requirements.txt $(ROS2_BUNDLE)/*.tar.*)
	@test -f $(ROS2_BUNDLE)/setup.sh || { echo "no ROS 2 bundle at $(ROS2_BUNDLE)"; exit 1; }
	rm -f $(ROS2_STAMP)
	bash $(ROS2_BUNDLE)/setup.sh $(ROS2_DIR)
	$(ROS2_DIR)/venv/bin/python -m pip install --quiet -c $(ROS2_BUNDLE)/requirements.txt \
	    -r requirements/cpu.txt -r requirements/ros.txt
	touch $(ROS2_STAMP)

demo: $(STAMP)
	$(PY) -m mono_depth_ros demo $(if $(MODEL),--model "$(MODEL)") $(if $(INPUT),--input "$(INPUT)") $(DEMO_ARGS)

test: $(STAMP)
	@if [ -f $(ROS2_BUNDLE)/setup.sh ]; then $(MAKE) --no-print-directory ros2 || { \
	    echo "full-ROS tier: setting up $(ROS2_BUNDLE) failed"; [ "$$CI" != "true" ] || exit 1; }; \
	else echo "full-ROS tier: no bundle at $(ROS2_BUNDLE): its tests skip"; fi
	$(PY) -m pytest $(PYTEST_ARGS)

typecheck: $(STAMP)
	$(PY) benchmarks/typecheck_tensorrt.py

clean:
	rm -rf $(VENV) $(ROS2_DIR) out .pytest_cache
