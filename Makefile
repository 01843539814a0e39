# The two README commands: `make demo` (main job) and `make test` (test suite).
# Each creates or refreshes its own virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
APT_PACKAGES := dataset-fashion-mnist libosmesa6
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: demo test venv apt lint clean

demo: venv
	$(VENV)/bin/sensorysync-demo --out demo_out

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --timeout 600 test

venv: apt $(STAMP)

# System packages: installed when run as root, reported otherwise.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "NOTE: apt packages missing:$$missing (run 'sudo apt-get install$$missing')"; fi; \
	fi

$(STAMP): setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[ros,train,sim,test]'
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build install log demo_out
